import { randomUUID, webcrypto } from 'node:crypto';
import { hash, verify, type Algorithm } from '@node-rs/argon2';
import { eq } from 'drizzle-orm';
import type { Request, RequestHandler, Router } from 'express';
import { SignJWT, jwtVerify } from 'jose';
import { z } from 'zod';
import { recordReferral, referrerOfCode } from '../db/referrals';
import { users } from '../db/schema';
import { REFERRAL_CODE } from '../domain/referral';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, ROLES, normalizeEmail, toUserView, type Role, type UserView } from '../domain/user';
import type { Config } from '../platform/config';
import type { AppDeps } from './deps';
import { VerifiedTokens } from './verified-tokens';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { addLogBindings } from './request-context';
import { apiRouter } from './route';
import { nonBlankText, parseBody } from './validation';

export interface AuthUser {
  id: string;
  email: string;
  role: Role;
}

const TOKEN_ISSUER = 'billing-orchestrator';
const TOKEN_AUDIENCE = 'billing-orchestrator-api';
// `Algorithm` is a const enum the native package does not export at runtime; 2 is Argon2id.
const ARGON2ID: Algorithm = 2;

const EMAIL_MAX_LENGTH = 254;
const emailField = z.email().max(EMAIL_MAX_LENGTH).transform(normalizeEmail);
// zod checks the format after trimming so " A@B.com " is accepted and stored as "a@b.com". The
// document shows the address zod accepts (its pattern), since the trimmed input is a plain string.
const normalizedEmail = z
  .string()
  .trim()
  .pipe(emailField)
  .meta({ description: 'An email address', pattern: z.regexes.email.source, maxLength: EMAIL_MAX_LENGTH });

const signupSchema = z.object({
  email: normalizedEmail,
  password: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
  name: nonBlankText(200),
  referralCode: z
    .string()
    .trim()
    .regex(REFERRAL_CODE, 'Must be a referral code such as AB9ASJEH')
    .optional()
    .meta({ description: "Another customer's referral code (any case): they earn credit when this account's first paid period succeeds." }),
});

const loginSchema = z.object({
  email: normalizedEmail,
  password: z.string().min(1).max(PASSWORD_MAX_LENGTH),
});

/** A user as the API shows it: never the password hash. */
export const userJsonSchema = z
  .strictObject({
    id: z.uuid(),
    // Whatever signup accepted (see normalizedEmail), which is not every checker's "email" format.
    email: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    createdAt: isoDateTime,
  })
  .meta({ id: 'User' }) satisfies z.ZodType<UserView>;

const tokenClaimsSchema = z.object({
  sub: z.uuid(),
  email: z.string(),
  role: z.enum(ROLES),
});

export function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: ARGON2ID });
}

/** Signs a bearer token for `user` that expires after JWT_TTL. */
export function issueToken(config: Pick<Config, 'JWT_SECRET' | 'JWT_TTL'>, user: AuthUser): Promise<string> {
  return new SignJWT({ email: user.email, role: user.role })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user.id)
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${jwtTtlSeconds(config.JWT_TTL)}s`)
    .sign(signingKey(config));
}

function unknownReferralCode(): HttpProblem {
  return new HttpProblem(400, 'Invalid request', 'referralCode: No customer has this referral code', {
    invalidParams: [{ name: 'referralCode', reason: 'No customer has this referral code' }],
  });
}

/** POST /signup, POST /login, GET /me. */
export function authRoutes(deps: AppDeps): Router {
  const { db, config } = deps;
  const { router, route } = apiRouter(deps);
  // Checked once at start-up so a JWT_TTL in months or years fails before the first login.
  jwtTtlSeconds(config.JWT_TTL);
  // Unknown emails are checked against this hash so they take as long as a wrong password.
  let unknownUserHash: Promise<string> | undefined;

  route(authApi.signup, async (req, res) => {
    const input = parseBody(signupSchema, req.body);
    const referrerId = input.referralCode === undefined ? undefined : await referrerOfCode(db, input.referralCode);
    if (input.referralCode !== undefined && !referrerId) throw unknownReferralCode();
    const passwordHash = await hashPassword(input.password);
    // The account and who referred it, together: a referral is never recorded for an account that failed.
    const user = await db.transaction(async (tx) => {
      const [row] = await tx
        .insert(users)
        .values({ email: input.email, name: input.name, passwordHash })
        .onConflictDoNothing({ target: users.email })
        .returning();
      if (row && referrerId) await recordReferral(tx, { referrerId, referredUserId: row.id, code: input.referralCode! });
      return row;
    });
    if (!user) throw new HttpProblem(409, 'Email already registered', 'An account with this email already exists.');
    res.status(201).json({ user: toUserView(user), token: await issueToken(config, user) });
  });

  route(authApi.login, async (req, res) => {
    const input = parseBody(loginSchema, req.body);
    const [user] = await db.select().from(users).where(eq(users.email, input.email)).limit(1);
    unknownUserHash ??= hashPassword(randomUUID());
    const passwordMatches = await verify(user?.passwordHash ?? (await unknownUserHash), input.password);
    if (!user || !passwordMatches) {
      throw new HttpProblem(401, 'Invalid credentials', 'The email or password is incorrect.');
    }
    res.json({ user: toUserView(user), token: await issueToken(config, user) });
  });

  route(authApi.me, async (req, res) => {
    const [user] = await db
      .select()
      .from(users)
      .where(eq(users.id, currentUser(req).id))
      .limit(1);
    if (!user) throw unauthorized('The account no longer exists.');
    res.json({ user: toUserView(user) });
  });

  return router;
}

const authenticatedUsers = new WeakMap<Request, AuthUser>();

/** Accepts `Authorization: Bearer <token>`; anything else is a 401. Adds `userId` to the request's log lines. */
export function requireAuth(deps: Pick<AppDeps, 'config'>): RequestHandler {
  // Imported once: given the secret's bytes, jose imports a WebCrypto key on every verify.
  const key = verificationKey(deps.config);
  const verified = verifiedTokensOf(deps.config);
  return async (req, _res, next) => {
    const match = /^Bearer ([^\s]+)$/i.exec(req.get('authorization') ?? '');
    if (!match) throw unauthorized('A bearer token is required.');
    const user = verified.get(match[1]) ?? (await verifyToken(match[1], await key, verified));
    if (!user) throw unauthorized('The bearer token is invalid or has expired.');
    authenticatedUsers.set(req, user);
    addLogBindings(req, { userId: user.id });
    next();
  };
}

export function requireRole(role: 'staff'): RequestHandler {
  return (req, _res, next) => {
    if (currentUser(req).role !== role) {
      throw new HttpProblem(403, 'Forbidden', `This action needs the ${role} role.`);
    }
    next();
  };
}

/** The user `requireAuth` authenticated; calling it on a route without `requireAuth` is a bug. */
export function currentUser(req: Request): AuthUser {
  const user = authenticatedUsers.get(req);
  if (!user) throw new Error('currentUser() called on a route that does not use requireAuth()');
  return user;
}

/** The authenticated user, if any (for logging). */
export function findCurrentUser(req: Request): AuthUser | undefined {
  return authenticatedUsers.get(req);
}

// Tokens verified by this process (api/verified-tokens.ts says why keeping them is safe): one set
// per configuration, so per secret, shared by every router's requireAuth.
const VERIFIED_TOKENS_KEPT = 10_000;
const verifiedTokens = new WeakMap<Pick<Config, 'JWT_SECRET'>, VerifiedTokens<AuthUser>>();

function verifiedTokensOf(config: Pick<Config, 'JWT_SECRET'>): VerifiedTokens<AuthUser> {
  let kept = verifiedTokens.get(config);
  if (!kept) verifiedTokens.set(config, (kept = new VerifiedTokens(VERIFIED_TOKENS_KEPT)));
  return kept;
}

async function verifyToken(token: string, key: webcrypto.CryptoKey, verified: VerifiedTokens<AuthUser>): Promise<AuthUser | undefined> {
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
    });
    const claims = tokenClaimsSchema.parse(payload);
    const user: AuthUser = { id: claims.sub, email: claims.email, role: claims.role };
    verified.keep(token, user, payload);
    return user;
  } catch {
    return undefined;
  }
}

function unauthorized(detail: string): HttpProblem {
  return new HttpProblem(401, 'Unauthorized', detail, {}, { 'WWW-Authenticate': 'Bearer' });
}

function signingKey(config: Pick<Config, 'JWT_SECRET'>): Uint8Array {
  return new TextEncoder().encode(config.JWT_SECRET);
}

/** The HS256 key that checks tokens, usable for nothing else. */
function verificationKey(config: Pick<Config, 'JWT_SECRET'>): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('raw', signingKey(config), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
}

const FIXED_DURATION_UNITS_SECONDS = { W: 604_800, D: 86_400, H: 3_600, M: 60, S: 1 } as const;

/**
 * A token lifetime is a fixed number of seconds, so JWT_TTL may use weeks, days, hours,
 * minutes and seconds (PT1H, P1DT12H) but not calendar years or months.
 */
export function jwtTtlSeconds(isoDuration: string): number {
  const match = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(isoDuration);
  if (!match) {
    throw new Error(`JWT_TTL must be an ISO-8601 duration in weeks, days, hours, minutes or seconds, got ${isoDuration}`);
  }
  const [, weeks, days, hours, minutes, seconds] = match.map((part) => Number(part ?? 0));
  const { W, D, H, M, S } = FIXED_DURATION_UNITS_SECONDS;
  const total = weeks * W + days * D + hours * H + minutes * M + seconds * S;
  if (total <= 0) throw new Error(`JWT_TTL must be longer than zero, got ${isoDuration}`);
  return total;
}

const signedIn = z.strictObject({
  user: userJsonSchema,
  token: z.string().meta({ description: 'A bearer token (JWT) for the Authorization header' }),
});

export const authApi = {
  signup: {
    method: 'post',
    path: '/api/v1/auth/signup',
    summary: 'Create a customer account; answers a token',
    auth: 'public',
    request: { body: signupSchema },
    responses: {
      201: json('The account and a token', signedIn),
      ...problems([400, 'Bad input, or a referralCode no customer has'], [409, 'The email is already registered']),
    },
  },
  login: {
    method: 'post',
    path: '/api/v1/auth/login',
    summary: 'Exchange email and password for a token',
    auth: 'public',
    request: { body: loginSchema },
    responses: { 200: json('The account and a token', signedIn), ...problems(400, [401, 'The email or password is incorrect']) },
  },
  me: {
    method: 'get',
    path: '/api/v1/auth/me',
    summary: 'The signed-in user',
    auth: 'user',
    responses: { 200: json('The user', z.strictObject({ user: userJsonSchema })) },
  },
} satisfies Record<string, ApiOperation>;
