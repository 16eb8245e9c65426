/**
 * The custom search attributes support staff filter on in the Temporal UI, e.g.
 * `SubscriptionStatus="past_due"` or `CustomerEmail="ada@example.com"`. Starters set the ones
 * fixed for a workflow's life; workflows keep the status ones current. Every server that runs
 * these workflows must have them registered (workers/search-attributes.ts).
 */
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';

export const CustomerIdAttribute = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const CustomerEmailAttribute = defineSearchAttributeKey('CustomerEmail', SearchAttributeType.KEYWORD);
export const SubscriptionStatusAttribute = defineSearchAttributeKey('SubscriptionStatus', SearchAttributeType.KEYWORD);
export const PlanCodeAttribute = defineSearchAttributeKey('PlanCode', SearchAttributeType.KEYWORD);
export const BookingStatusAttribute = defineSearchAttributeKey('BookingStatus', SearchAttributeType.KEYWORD);
export const OfferingIdAttribute = defineSearchAttributeKey('OfferingId', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [
  CustomerIdAttribute,
  CustomerEmailAttribute,
  SubscriptionStatusAttribute,
  PlanCodeAttribute,
  BookingStatusAttribute,
  OfferingIdAttribute,
] as const;

/** Who a workflow is for, set when it starts; the email is left out when the starter does not know it. */
export function customerAttributes(customer: { userId: string; email?: string }): SearchAttributePair[] {
  return [
    { key: CustomerIdAttribute, value: customer.userId },
    ...(customer.email ? [{ key: CustomerEmailAttribute, value: customer.email }] : []),
  ];
}

/**
 * Inside a workflow: sets a status attribute only when its value changes, so a workflow that
 * publishes its status after every step adds no history event when nothing changed.
 */
export function upsertStatusAttribute(
  key: typeof SubscriptionStatusAttribute | typeof BookingStatusAttribute,
  value: string,
): void {
  if (workflowInfo().typedSearchAttributes.get(key) === value) return;
  upsertSearchAttributes([{ key, value }]);
}
