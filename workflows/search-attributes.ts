/** Search attributes from inside workflows and their starters; the keys are in platform/search-attribute-keys.ts. */
import type { SearchAttributePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { CustomerEmailAttribute, CustomerIdAttribute, SubscriptionStatusAttribute } from '../platform/search-attribute-keys';

export * from '../platform/search-attribute-keys';

/** Who a workflow is for, set when it starts; the email is left out when the starter does not know it. */
export function customerAttributes(customer: { userId: string; email?: string }): SearchAttributePair[] {
  return [{ key: CustomerIdAttribute, value: customer.userId }, ...(customer.email ? [{ key: CustomerEmailAttribute, value: customer.email }] : [])];
}

/**
 * Inside a workflow: sets a status attribute only when its value changes, so a workflow that
 * publishes its status after every step adds no history event when nothing changed.
 */
// BookingStatusAttribute is a keyword key too, so this one type names both.
export function upsertStatusAttribute(key: typeof SubscriptionStatusAttribute, value: string): void {
  if (workflowInfo().typedSearchAttributes.get(key) === value) return;
  upsertSearchAttributes([{ key, value }]);
}
