/**
 * The custom search attributes support staff filter on in the Temporal UI, e.g.
 * `SubscriptionStatus="past_due"` or `CustomerEmail="ada@example.com"`. Starters set the ones
 * fixed for a workflow's life; workflows keep the status ones current (workflows/search-attributes.ts).
 * Every server that runs these workflows must have them registered (platform/search-attributes.ts).
 * Only `@temporalio/common` here: workflow code imports this file.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

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
