/**
 * ISO-8601 durations (`P1M`, `P1Y`, `P1W`, `P3D`, `PT30S`, `P1DT12H`) and calendar-correct date
 * arithmetic in UTC. Billing dates are always computed from the subscription's anchor, never
 * from the previous billing date, so a Jan 31 anchor bills Feb 28 (or 29), then Mar 31 again.
 */

export interface IsoDuration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
  seconds: number;
}

export class InvalidDurationError extends Error {
  constructor(
    readonly text: string,
    reason = 'is not an ISO-8601 duration such as P1M, P7D or PT30S',
  ) {
    super(`"${text}" ${reason}`);
    this.name = 'InvalidDurationError';
  }
}

const DURATION_PATTERN = /^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export function parseDuration(text: string): IsoDuration {
  const match = DURATION_PATTERN.exec(text);
  if (!match) throw new InvalidDurationError(text);
  const [years, months, weeks, days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0));
  return { years, months, weeks, days, hours, minutes, seconds };
}

export function isIsoDuration(text: string): boolean {
  return DURATION_PATTERN.test(text);
}

/** True for a duration that moves time forward (`P0D` and `PT0S` do not). */
export function isPositiveDuration(duration: IsoDuration | string): boolean {
  const d = asDuration(duration);
  return Object.values(d).some((part) => part > 0);
}

/** Parses and rejects zero durations: what a billing interval, trial or grace period must be. */
export function parsePositiveDuration(text: string): IsoDuration {
  const duration = parseDuration(text);
  if (!isPositiveDuration(duration)) throw new InvalidDurationError(text, 'must be longer than zero');
  return duration;
}

/**
 * The date `n` whole intervals after `anchor`. Years and months move the calendar month and keep
 * the anchor's day, clamped to the month's length (Jan 31 + 1 × P1M = Feb 28/29, + 2 × P1M = Mar 31);
 * weeks and days are calendar days (UTC has no DST); hours, minutes and seconds are plain time.
 */
export function addPeriods(anchor: Date, interval: IsoDuration | string, n: number): Date {
  if (!Number.isInteger(n)) throw new RangeError(`period count must be a whole number, got ${n}`);
  const d = asDuration(interval);
  const monthsToAdd = (d.years * 12 + d.months) * n;
  const shiftedMonth = monthsToAdd === 0 ? anchor : addCalendarMonths(anchor, monthsToAdd);
  const plainMs = ((d.weeks * 7 + d.days) * DAY + d.hours * HOUR + d.minutes * MINUTE + d.seconds * SECOND) * n;
  const result = new Date(shiftedMonth.getTime() + plainMs);
  // Past ±275 000 years a Date is invalid; saying so here beats an "Invalid time value" later.
  if (Number.isNaN(result.getTime())) throw new RangeError(`${n} × ${formatDuration(d)} after ${anchor.toISOString()} is beyond any date`);
  return result;
}

/**
 * True when `text` is a positive ISO-8601 duration no longer than `max` (both measured from the
 * same instant, so `P12M` fits within `P1Y`). What a staff member or customer may hand a workflow.
 */
export function isDurationWithin(text: string, max: string): boolean {
  if (!isIsoDuration(text) || !isPositiveDuration(text)) return false;
  const from = new Date(Date.UTC(2000, 0, 31));
  const d = parseDuration(text);
  // Each part is checked alone first, so a huge count cannot overflow the date arithmetic.
  const limitMs = addDuration(from, max).getTime() - from.getTime();
  const partMs = [d.years * 366 * DAY, d.months * 28 * DAY, d.weeks * 7 * DAY, d.days * DAY, d.hours * HOUR, d.minutes * MINUTE, d.seconds * SECOND];
  if (partMs.some((ms) => ms > limitMs)) return false;
  return addDuration(from, d).getTime() <= addDuration(from, max).getTime();
}

/** `from` plus one `duration`. */
export function addDuration(from: Date, duration: IsoDuration | string): Date {
  return addPeriods(from, duration, 1);
}

/**
 * The length of a duration that has no calendar months or years, in milliseconds
 * (timeouts such as `PT30M` or `P1D`). Throws for `P1M`, whose length depends on the date.
 */
export function durationToMilliseconds(duration: IsoDuration | string): number {
  const d = asDuration(duration);
  if (d.years !== 0 || d.months !== 0) {
    throw new InvalidDurationError(formatDuration(d), 'has months or years, so its length depends on the start date');
  }
  return addPeriods(new Date(0), d, 1).getTime();
}

export function formatDuration(d: IsoDuration): string {
  const date = `${part(d.years, 'Y')}${part(d.months, 'M')}${part(d.weeks, 'W')}${part(d.days, 'D')}`;
  const time = `${part(d.hours, 'H')}${part(d.minutes, 'M')}${part(d.seconds, 'S')}`;
  if (!date && !time) return 'PT0S';
  return `P${date}${time ? `T${time}` : ''}`;
}

/**
 * A span of time for a message to a person: the two most significant units, rounded down
 * ("6 days", "1 day 12 hours", "20 seconds"). Spans under a second read "less than a second".
 */
export function describeTimeSpan(milliseconds: number): string {
  const units: [number, string][] = [
    [DAY, 'day'],
    [HOUR, 'hour'],
    [MINUTE, 'minute'],
    [SECOND, 'second'],
  ];
  let rest = Math.max(0, milliseconds);
  const parts: string[] = [];
  for (const [size, name] of units) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0 || parts.length > 0) parts.push(count === 0 ? '' : `${count} ${name}${count === 1 ? '' : 's'}`);
    if (parts.length === 2) break;
  }
  const words = parts.filter(Boolean);
  return words.length > 0 ? words.join(' ') : 'less than a second';
}

function asDuration(duration: IsoDuration | string): IsoDuration {
  return typeof duration === 'string' ? parseDuration(duration) : duration;
}

function part(value: number, designator: string): string {
  return value === 0 ? '' : `${value}${designator}`;
}

function addCalendarMonths(date: Date, months: number): Date {
  const monthIndex = date.getUTCFullYear() * 12 + date.getUTCMonth() + months;
  const year = Math.floor(monthIndex / 12);
  const month = monthIndex - year * 12;
  const day = Math.min(date.getUTCDate(), daysInMonth(year, month));
  const result = new Date(date.getTime());
  result.setUTCFullYear(year, month, day);
  return result;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}
