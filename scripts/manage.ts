import path from 'node:path';
import { parseArgs } from 'node:util';
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { hashPassword } from '../api/auth';
import { connectDatabase, migrateDatabase } from '../db/client';
import { users } from '../db/schema';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, normalizeEmail } from '../domain/user';
import { chooseEndpointsFile, CLUSTER_ENDPOINTS_FILE, useLocalEndpoints } from './local-endpoints';
import { REPO_ROOT } from './tools';

const USAGE = `Usage: npm run manage -- <command> [options]

Commands:
  create-staff --email EMAIL --password PASSWORD [--name NAME]
      Creates a staff user, or makes an existing user staff and sets its password.

Environment:
  DATABASE_URL     PostgreSQL connection URL; when unset, the one of the \`npm start\` running in
                   this checkout (recorded in .data/endpoints.json), else of its \`npm run cluster\`
                   (.data/cluster/endpoints.json)
  ENDPOINTS_FILE   The endpoints file to read instead, e.g. .data/cluster/endpoints.json to reach
                   the cluster while \`npm start\` runs too`;

class UsageError extends Error {}

// Only what this command touches is required: an operator should not need JWT or Stripe secrets.
const envSchema = z.object({ DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }) });

const createStaffSchema = z.object({
  email: z.string({ error: 'is required' }).trim().pipe(z.email()).transform(normalizeEmail),
  password: z.string({ error: 'is required' }).min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
  name: z.string().trim().min(1).max(200).optional(),
});

async function createStaff(args: string[]): Promise<string> {
  const { values } = parseArgs({
    args,
    options: { email: { type: 'string' }, password: { type: 'string' }, name: { type: 'string' } },
    strict: true,
  });
  const parsed = createStaffSchema.safeParse(values);
  if (!parsed.success) {
    throw new UsageError(parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n'));
  }
  const { email, password, name } = parsed.data;
  const databaseUrl = databaseUrlFromEnv();

  await migrateDatabase(databaseUrl);
  const { db, close } = connectDatabase(databaseUrl, { max: 1 });
  try {
    const passwordHash = await hashPassword(password);
    const [existing] = await db.select({ id: users.id }).from(users).where(eq(users.email, email));
    if (existing) {
      await db
        .update(users)
        .set({ role: 'staff', passwordHash, ...(name ? { name } : {}) })
        .where(eq(users.id, existing.id));
      return `Made existing user ${email} (${existing.id}) staff and set its password.`;
    }
    const [created] = await db
      .insert(users)
      .values({ email, passwordHash, name: name ?? email.split('@')[0], role: 'staff' })
      .returning({ id: users.id });
    return `Created staff user ${email} (${created.id}).`;
  } finally {
    await close();
  }
}

function databaseUrlFromEnv(): string {
  if (!process.env.DATABASE_URL) {
    const file = path.relative(process.cwd(), chooseEndpointsFile()) || chooseEndpointsFile();
    throw new Error(
      `DATABASE_URL is not set and no \`npm start\` or \`npm run cluster\` is running in ${REPO_ROOT} (${file}): start one, or set DATABASE_URL`,
    );
  }
  const env = envSchema.safeParse(process.env);
  if (!env.success) {
    throw new Error(`Invalid configuration: DATABASE_URL: ${env.error.issues[0].message}`);
  }
  return env.data.DATABASE_URL;
}

const COMMANDS: Record<string, (args: string[]) => Promise<string>> = {
  'create-staff': createStaff,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const endpointsFile = chooseEndpointsFile();
  const filled = useLocalEndpoints(process.env, endpointsFile);
  if (filled.length > 0) {
    const by = endpointsFile === CLUSTER_ENDPOINTS_FILE ? '`npm run cluster`' : '`npm start`';
    console.error(`Using the servers of the running ${by} (${path.relative(process.cwd(), endpointsFile) || endpointsFile}).`);
  }
  if (!command || command === 'help' || command === '--help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`Unknown command: ${command}\n\n${USAGE}`);
    return 2;
  }
  try {
    console.log(await run(args));
    return 0;
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(err instanceof Error ? err.message : err);
    return 1;
  }
}

// main() reports its own errors and never rejects.
void main(process.argv.slice(2)).then((code) => process.exit(code));
