/**
 * Referrals: every customer has a code; a customer who signs up with it is referred by its owner,
 * and when the referred customer's first paid period succeeds the referrer gets REFERRAL_CREDIT on
 * their credit balance, once per referred customer (the ledger key below), never for a
 * self-referral, never for a first payment that was refunded in full. Pure rules, no I/O.
 */

/** Letters and digits a person reads back without confusing them (no 0/O, 1/I/L, U). */
export const REFERRAL_ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';
export const REFERRAL_CODE_LENGTH = 8;

/** What a referral code looks like, in either case. */
export const REFERRAL_CODE = new RegExp(`^[${REFERRAL_ALPHABET}${REFERRAL_ALPHABET.toLowerCase()}]{${REFERRAL_CODE_LENGTH}}$`);

/**
 * A code from random bytes (the caller's source of randomness: domain/ has none). The modulo's
 * slight bias (256 is not a multiple of 30) costs a fraction of a bit of the code's ~39 bits.
 */
export function referralCodeFromBytes(bytes: Uint8Array): string {
  if (bytes.length < REFERRAL_CODE_LENGTH) throw new RangeError(`needs ${REFERRAL_CODE_LENGTH} bytes, got ${bytes.length}`);
  let code = '';
  for (let i = 0; i < REFERRAL_CODE_LENGTH; i++) code += REFERRAL_ALPHABET[bytes[i] % REFERRAL_ALPHABET.length];
  return code;
}

/** The stored form: upper case, trimmed. Codes compare case-insensitively. */
export function normalizeReferralCode(code: string): string {
  return code.trim().toUpperCase();
}

export function isReferralCode(code: string): boolean {
  return REFERRAL_CODE.test(code.trim());
}

/** The credit a referral earns, from REFERRAL_CREDIT ("500 usd": minor units and a currency). */
export interface ReferralCredit {
  amount: number;
  currency: string;
}

/** "500 usd" → {amount: 500, currency: 'usd'}; null when the text is not that shape. */
export function parseReferralCredit(text: string): ReferralCredit | null {
  const match = /^\s*(\d{1,15})\s+([a-zA-Z]{3})\s*$/.exec(text);
  if (!match) return null;
  const amount = Number(match[1]);
  if (!Number.isSafeInteger(amount) || amount <= 0) return null;
  return { amount, currency: match[2].toLowerCase() };
}

/**
 * The credit ledger key of a referral's reward: one per referred customer, whoever retries the
 * step and however often (credit_entries.idempotency_key is unique).
 */
export function referralRewardKey(referredUserId: string): string {
  return `referral/${referredUserId}`;
}

export type ReferralRewardRefusal = 'self_referral' | 'refunded_in_full' | 'not_paid';

/**
 * Whether the referrer is rewarded for this referred customer's first paid period: never for a
 * self-referral, never for a period that cost nothing (a 100 % coupon), never when it was refunded
 * in full. A period the customer's credit balance paid counts as paid.
 */
export function referralRewardRefusal(input: {
  referrerId: string;
  referredUserId: string;
  /** What the first period's charge was (before credit), minor units. */
  amount: number;
  /** What was given back of it so far (card and credit), minor units. */
  refunded: number;
}): ReferralRewardRefusal | null {
  if (input.referrerId === input.referredUserId) return 'self_referral';
  if (input.amount <= 0) return 'not_paid';
  if (input.refunded >= input.amount) return 'refunded_in_full';
  return null;
}
