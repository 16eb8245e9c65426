/**
 * Links from API objects to the workflow that owns them in the Temporal Web UI, so support staff
 * go from any answer of the API straight to its history, state query and details.
 */
import { z } from 'zod';
import { bookingWorkflowId } from '../domain/booking';
import { oneTimePaymentWorkflowId } from '../domain/payment';
import { subscriptionWorkflowId } from '../domain/subscription';
import type { Config } from '../platform/config';

export interface WorkflowLink {
  workflowId: string;
  temporalUiUrl: string;
}

/** Names a workflow and where the Temporal UI shows it. */
export type WorkflowLinker = (workflowId: string) => WorkflowLink;

/** The fields every object owned by a workflow carries; spread into its response schema. */
export const workflowLinkFields = {
  workflowId: z.string().meta({ description: 'The workflow that owns this object, e.g. `subscription-<id>`.' }),
  temporalUiUrl: z.url().meta({ description: 'The workflow in the Temporal Web UI (base from TEMPORAL_UI_URL).' }),
};

export function workflowLinker(config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>): WorkflowLinker {
  return (workflowId) => ({ workflowId, temporalUiUrl: temporalUiUrl(config, workflowId) });
}

/** `${TEMPORAL_UI_URL}/namespaces/<namespace>/workflows/<workflowId>`: the latest run of the workflow. */
export function temporalUiUrl(config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>, workflowId: string): string {
  const base = config.TEMPORAL_UI_URL.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;
}

/**
 * The workflow a payment belongs to: its subscription's or booking's, else the one-time payment's
 * own (a refund of a one-time payment: the workflow of the payment it refunds).
 */
export function paymentWorkflowId(payment: { id: string; subscriptionId: string | null; bookingId: string | null; refundOf: string | null }): string {
  if (payment.subscriptionId) return subscriptionWorkflowId(payment.subscriptionId);
  if (payment.bookingId) return bookingWorkflowId(payment.bookingId);
  return oneTimePaymentWorkflowId(payment.refundOf ?? payment.id);
}
