/**
 * Stripe's test payment method tokens as the sandbox knows them: how a charge on each answers
 * and the card it stands for (brand and last four digits of Stripe's matching test number).
 */
export type SandboxAnswer = { status: 'succeeded' } | { status: 'requires_action' } | { status: 'declined'; failureCode: string };

export interface SandboxCard {
  answer: SandboxAnswer;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
}

/** Test cards expire in December a few years ahead, as the numbers in Stripe's docs are shown. */
const TEST_CARD_EXPIRY = { expMonth: 12, expYear: 2034 } as const;

const SUCCEEDS: SandboxAnswer = { status: 'succeeded' };
const AUTHENTICATES: SandboxAnswer = { status: 'requires_action' };
const declines = (failureCode: string): SandboxAnswer => ({ status: 'declined', failureCode });

const TEST_TOKENS: Readonly<Record<string, { answer: SandboxAnswer; brand: string; last4: string }>> = {
  pm_card_visa: { answer: SUCCEEDS, brand: 'visa', last4: '4242' },
  pm_card_visa_debit: { answer: SUCCEEDS, brand: 'visa', last4: '5556' },
  pm_card_mastercard: { answer: SUCCEEDS, brand: 'mastercard', last4: '4444' },
  pm_card_mastercard_debit: { answer: SUCCEEDS, brand: 'mastercard', last4: '8210' },
  pm_card_amex: { answer: SUCCEEDS, brand: 'amex', last4: '8431' },
  pm_card_discover: { answer: SUCCEEDS, brand: 'discover', last4: '1117' },
  pm_card_jcb: { answer: SUCCEEDS, brand: 'jcb', last4: '0505' },
  pm_card_unionpay: { answer: SUCCEEDS, brand: 'unionpay', last4: '0005' },
  pm_card_chargeDeclined: { answer: declines('generic_decline'), brand: 'visa', last4: '0002' },
  pm_card_chargeCustomerFail: { answer: declines('generic_decline'), brand: 'visa', last4: '0341' },
  pm_card_chargeDeclinedInsufficientFunds: { answer: declines('insufficient_funds'), brand: 'visa', last4: '9995' },
  pm_card_chargeDeclinedExpiredCard: { answer: declines('expired_card'), brand: 'visa', last4: '0069' },
  pm_card_chargeDeclinedIncorrectCvc: { answer: declines('incorrect_cvc'), brand: 'visa', last4: '0127' },
  pm_card_chargeDeclinedProcessingError: { answer: declines('processing_error'), brand: 'visa', last4: '0119' },
  pm_card_chargeDeclinedVelocityLimitExceeded: { answer: declines('card_velocity_exceeded'), brand: 'visa', last4: '6975' },
  pm_card_chargeDeclinedStolenCard: { answer: declines('stolen_card'), brand: 'visa', last4: '9979' },
  pm_card_chargeDeclinedLostCard: { answer: declines('lost_card'), brand: 'visa', last4: '9987' },
  pm_card_chargeDeclinedFraudulent: { answer: declines('fraudulent'), brand: 'visa', last4: '0019' },
  pm_card_riskLevelHighest: { answer: declines('fraudulent'), brand: 'visa', last4: '0019' },
  pm_card_authenticationRequired: { answer: AUTHENTICATES, brand: 'visa', last4: '3184' },
  pm_card_threeDSecureRequired: { answer: AUTHENTICATES, brand: 'visa', last4: '3063' },
  pm_card_threeDSecure2Required: { answer: AUTHENTICATES, brand: 'visa', last4: '3220' },
};

/** True for a token Stripe turns into a new payment method on each use (`pm_card_…`). */
export function isTestToken(paymentMethod: string): boolean {
  return /^pm_card_[A-Za-z0-9_]+$/.test(paymentMethod);
}

/**
 * The card behind a test token. An unlisted `pm_card_chargeDeclined*` token declines
 * generically; any other unlisted `pm_card_*` token is a Visa that succeeds; null for a string
 * that is not a test token.
 */
export function sandboxCardOf(token: string): SandboxCard | null {
  if (!isTestToken(token)) return null;
  const listed = TEST_TOKENS[token];
  if (listed) return { ...listed, ...TEST_CARD_EXPIRY };
  if (token.startsWith('pm_card_chargeDeclined')) return { answer: declines('generic_decline'), brand: 'visa', last4: '0002', ...TEST_CARD_EXPIRY };
  return { answer: SUCCEEDS, brand: 'visa', last4: '4242', ...TEST_CARD_EXPIRY };
}
