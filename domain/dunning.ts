/**
 * Dunning: what happens after a renewal charge fails. Every offset is measured from the failed
 * renewal; retries charge again, reminders tell the customer how long they have left, and the
 * subscription expires when the grace period ends without a successful payment.
 */
import { addDuration, isIsoDuration, isPositiveDuration } from './period';

export interface DunningPolicy {
  retryOffsets: string[];
  reminderOffsets: string[];
  gracePeriod: string;
}

/** Three retries over seven days, reminders on days 1, 3 and 5, expiry on day 7. */
export const DEFAULT_DUNNING_POLICY: DunningPolicy = Object.freeze({
  retryOffsets: Object.freeze(['P1D', 'P3D', 'P5D']) as string[],
  reminderOffsets: Object.freeze(['P1D', 'P3D', 'P5D']) as string[],
  gracePeriod: 'P7D',
});

/** Keeps one cycle's history small and a customer's inbox sane. */
export const MAX_DUNNING_STEPS = 24;

export type DunningEvent =
  | { kind: 'retry'; at: Date; retry: number; of: number }
  | { kind: 'reminder'; at: Date; reminder: number; of: number; timeLeftMs: number }
  | { kind: 'expiry'; at: Date };

export interface PolicyProblem {
  /** Where the problem is, relative to the policy object: e.g. `['retryOffsets', 1]`. */
  path: (string | number)[];
  message: string;
}

export function graceEndsAt(failedAt: Date, policy: DunningPolicy): Date {
  return addDuration(failedAt, policy.gracePeriod);
}

/**
 * The dunning timeline after a renewal failed at `failedAt`, in the order the workflow acts on it.
 * Events at the same instant run retry first (a success makes the reminder unnecessary), then the
 * reminder; expiry is always last. `graceEnd` is passed when staff extended the grace period.
 */
export function dunningTimeline(failedAt: Date, policy: DunningPolicy, graceEnd: Date = graceEndsAt(failedAt, policy)): DunningEvent[] {
  const retries: DunningEvent[] = policy.retryOffsets.map((offset, i) => ({
    kind: 'retry',
    at: addDuration(failedAt, offset),
    retry: i + 1,
    of: policy.retryOffsets.length,
  }));
  const reminders: DunningEvent[] = policy.reminderOffsets.map((offset, i) => {
    const at = addDuration(failedAt, offset);
    return { kind: 'reminder', at, reminder: i + 1, of: policy.reminderOffsets.length, timeLeftMs: graceEnd.getTime() - at.getTime() };
  });
  const beforeExpiry = [...retries, ...reminders]
    .filter((event) => event.at.getTime() < graceEnd.getTime())
    .sort((a, b) => a.at.getTime() - b.at.getTime() || KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
  return [...beforeExpiry, { kind: 'expiry', at: graceEnd }];
}

const KIND_ORDER: Record<DunningEvent['kind'], number> = { retry: 0, reminder: 1, expiry: 2 };

/**
 * Why a policy cannot be used, one problem per bad field; empty when it is valid. Offsets must be
 * positive, strictly increasing and end before the grace period does. Offsets with months are
 * compared against the 1st and last day of every month of a leap and a common year, so
 * `P1M` against `P30D` is caught on the dates where it would matter.
 */
export function dunningPolicyProblems(policy: DunningPolicy): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const graceValid = isIsoDuration(policy.gracePeriod) && isPositiveDuration(policy.gracePeriod);
  if (!graceValid) problems.push({ path: ['gracePeriod'], message: 'must be a positive ISO-8601 duration such as P7D' });
  for (const field of ['retryOffsets', 'reminderOffsets'] as const) {
    problems.push(...offsetProblems(field, policy[field], graceValid ? policy.gracePeriod : null));
  }
  return problems;
}

function offsetProblems(field: string, offsets: string[], gracePeriod: string | null): PolicyProblem[] {
  if (offsets.length > MAX_DUNNING_STEPS) {
    return [{ path: [field], message: `at most ${MAX_DUNNING_STEPS} offsets` }];
  }
  const problems: PolicyProblem[] = [];
  offsets.forEach((offset, i) => {
    if (!isIsoDuration(offset) || !isPositiveDuration(offset)) {
      problems.push({ path: [field, i], message: 'must be a positive ISO-8601 duration such as P1D' });
      return;
    }
    const previous = offsets[i - 1];
    if (i > 0 && isIsoDuration(previous) && !alwaysBefore(previous, offset)) {
      problems.push({ path: [field, i], message: `must come after ${previous}` });
    }
    if (gracePeriod && !alwaysBefore(offset, gracePeriod)) {
      problems.push({ path: [field, i], message: `must end before the grace period (${gracePeriod})` });
    }
  });
  return problems;
}

const REFERENCE_DATES: Date[] = [2023, 2024].flatMap((year) =>
  Array.from({ length: 12 }, (_, month) => [new Date(Date.UTC(year, month, 1)), new Date(Date.UTC(year, month + 1, 0))]).flat(),
);

function alwaysBefore(earlier: string, later: string): boolean {
  return REFERENCE_DATES.every((from) => addDuration(from, earlier).getTime() < addDuration(from, later).getTime());
}
