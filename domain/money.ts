/**
 * Money is an integer count of a currency's minor units (cents for USD, yen for JPY).
 * Currency codes are ISO 4217, stored lower-case as Stripe does ('usd').
 */

/** Currencies whose minor unit is the major unit (no decimals), as Stripe lists them. */
const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/** Symbols only where one is unambiguous to English readers; everything else prints its code. */
const SYMBOLS: Record<string, string> = { usd: '$', eur: '€', gbp: '£', jpy: '¥', inr: '₹' };

export class InvalidMoneyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidMoneyError';
  }
}

/** Three letters: the shape of an ISO 4217 code (the API shows it as a pattern). */
export const CURRENCY_CODE = /^[a-zA-Z]{3}$/;

export function isCurrencyCode(code: string): boolean {
  return CURRENCY_CODE.test(code);
}

/** 'USD' → 'usd'; throws for anything that is not three letters. */
export function normalizeCurrency(code: string): string {
  if (!isCurrencyCode(code)) throw new InvalidMoneyError(`"${code}" is not an ISO 4217 currency code`);
  return code.toLowerCase();
}

/** How many decimal places the currency's minor unit has (2 for USD, 0 for JPY, 3 for KWD). */
export function minorUnitDigits(currency: string): number {
  const code = normalizeCurrency(currency);
  if (ZERO_DECIMAL.has(code)) return 0;
  if (THREE_DECIMAL.has(code)) return 3;
  return 2;
}

/** A valid amount to charge: a positive whole number of minor units that JS holds exactly. */
export function isChargeableAmount(amount: number): boolean {
  return Number.isSafeInteger(amount) && amount > 0;
}

/**
 * Formats an amount for a human-readable message: `formatMoney(1999, 'usd')` → "$19.99",
 * `formatMoney(150000, 'chf')` → "CHF 1,500.00". Deterministic (no Intl), so workflows may call it.
 * `symbol: false` writes the code even where there is a symbol ("USD 19.99"), for output that
 * cannot draw every symbol (a PDF's built-in fonts have no ₹).
 */
export function formatMoney(amount: number, currency: string, { symbol: useSymbol = true }: { symbol?: boolean } = {}): string {
  if (!Number.isSafeInteger(amount)) throw new InvalidMoneyError(`${amount} is not a whole number of minor units`);
  const code = normalizeCurrency(currency);
  const digits = minorUnitDigits(code);
  const magnitude = Math.abs(amount);
  const divisor = 10 ** digits;
  const whole = groupThousands(String(Math.floor(magnitude / divisor)));
  const fraction = digits > 0 ? `.${String(magnitude % divisor).padStart(digits, '0')}` : '';
  const symbol = useSymbol ? SYMBOLS[code] : undefined;
  const number = `${whole}${fraction}`;
  const sign = amount < 0 ? '-' : '';
  return symbol ? `${sign}${symbol}${number}` : `${sign}${code.toUpperCase()} ${number}`;
}

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
