/**
 * What a subscription's charge costs and what its invoice says, as pure arithmetic: the plan's
 * price for every seat, less the coupon applied to the subscription, plus the plan's exclusive
 * tax (domain/invoice.ts prices the line: tax per line, rounded half-even). The amount charged is
 * the line's total, so the invoice always adds up to the charge.
 */
import { discountedCharge, discountFor, type AppliedDiscount } from './coupon';
import { priceLine, type InvoiceLineInput } from './invoice';
import type { Proration } from './proration';
import type { PlanTerms } from './subscription';

export interface PricedCharge {
  /** What is charged: after the discount, tax included. */
  amount: number;
  /** What the coupon took off (before tax). */
  discount: number;
  /** The charge's invoice lines (one). */
  lines: InvoiceLineInput[];
}

export interface PeriodPricing {
  plan: PlanTerms;
  quantity: number;
  /** The coupon on the subscription; null or absent: none (runs from before coupons carry none). */
  discount?: AppliedDiscount | null;
  description: string;
  period?: { start: string; end: string } | null;
}

/** A period's charge: seats × the plan's price, less the coupon when it covers this cycle, plus tax. */
export function pricePeriod({ plan, quantity, discount, description, period }: PeriodPricing): PricedCharge {
  const gross = plan.amount * quantity;
  const off = discountedCharge(discount ?? null, gross, plan.currency).discount;
  return priced({
    kind: 'plan',
    description,
    quantity,
    unitAmount: plan.amount,
    discount: off,
    taxRate: plan.taxRate ?? 0,
    planId: plan.planId,
    ...(period ? { periodStart: period.start, periodEnd: period.end } : {}),
  });
}

/**
 * The charge of a plan change's prorated net (positive: the customer owes it). A percentage
 * coupon that priced the current period takes the same share off the net; a fixed amount was
 * taken off the period's own charge already, so it takes nothing more off a proration.
 */
export function priceProration({
  plan,
  net,
  discount,
  description,
  period,
}: {
  plan: PlanTerms;
  net: number;
  discount?: AppliedDiscount | null;
  description: string;
  period?: { start: string; end: string } | null;
}): PricedCharge {
  return priced({
    kind: 'proration',
    description,
    quantity: 1,
    unitAmount: net,
    discount: prorationDiscount(discount, net, plan.currency),
    taxRate: plan.taxRate ?? 0,
    planId: plan.planId,
    ...(period ? { periodStart: period.start, periodEnd: period.end } : {}),
  });
}

/**
 * What a downgrade credits to the balance: the unused part of the period as the customer paid
 * for it, so a percentage coupon on the period shrinks the credit by the same share (a credit
 * never returns money the customer did not pay).
 */
export function prorationCredit(credit: number, discount: AppliedDiscount | null | undefined, currency: string): number {
  return credit - prorationDiscount(discount, credit, currency);
}

/** What a change now costs: the prorated net's charge (discount and tax in), or what it credits to the balance. */
export interface ChangeQuote {
  proration: Proration;
  /** Charged at once when the net is positive; null otherwise. */
  due: PricedCharge | null;
  /** Added to the credit balance when the net is negative; 0 otherwise. */
  credit: number;
}

/**
 * A change's proration priced as the workflow charges it and as the preview shows it: one function,
 * so what a customer is quoted is what they pay. `periodDiscount` is the coupon that priced the
 * current period; `at` is the instant of the change.
 */
export function quoteChange({
  proration,
  plan,
  quantity,
  periodDiscount,
  at,
}: {
  proration: Proration;
  plan: PlanTerms;
  quantity: number;
  periodDiscount?: AppliedDiscount | null;
  at: Date;
}): ChangeQuote {
  const due =
    proration.net > 0
      ? priceProration({
          plan,
          net: proration.net,
          discount: periodDiscount,
          description: `${plan.name} × ${quantity}, prorated to ${proration.periodEnd}`,
          period: { start: at.toISOString(), end: proration.periodEnd },
        })
      : null;
  const credit = proration.net < 0 ? prorationCredit(-proration.net, periodDiscount, proration.currency) : 0;
  return { proration, due, credit };
}

function prorationDiscount(discount: AppliedDiscount | null | undefined, amount: number, currency: string): number {
  if (!discount || discount.percentOff === null || amount <= 0) return 0;
  return discountFor(discount, amount, currency) ?? 0;
}

function priced(line: InvoiceLineInput): PricedCharge {
  const { total, discount } = priceLine(line);
  return { amount: total, discount, lines: [line] };
}
