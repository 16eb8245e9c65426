/**
 * Client-side calls to the subscription workflow, for the API and tests. This file runs in
 * ordinary Node (it is not part of the worker's workflow bundle: workflows/index.ts does not
 * import it).
 */
import { WithStartWorkflowOperation, type Client, type WorkflowHandle } from '@temporalio/client';
import { subscriptionWorkflowId } from '../domain/subscription';
import type { SubscriptionSnapshot } from '../domain/subscription';
import { planTermsDetails, subscriptionSummary } from '../domain/workflow-descriptions';
import { paymentSettledSignal } from '../workflows/payment';
import {
  activationUpdate,
  cancelSubscriptionUpdate,
  extendGraceSignal,
  retryPaymentNowSignal,
  subscriptionStateQuery,
  updatePaymentMethodUpdate,
  type ActivationResult,
  type subscriptionWorkflow,
  type SubscriptionWorkflowInput,
} from '../workflows/subscription';
import type { PaymentSettlement } from '../domain/payment';
import { customerAttributes, PlanCodeAttribute } from '../workflows/search-attributes';

export type SubscriptionHandle = WorkflowHandle<typeof subscriptionWorkflow>;

/**
 * Starts the subscription's workflow and waits for its first charge (update-with-start: one
 * round trip, and the update cannot miss a workflow that ends at once). Answers:
 * - `active` / `trialing`: subscribed (HTTP 201);
 * - `declined`: the workflow has already ended, status `incomplete` (HTTP 402);
 * - `pending`: the charge awaits customer action; the workflow waits for the payment webhook.
 * The same subscription id again attaches to the running workflow and gets its answer; once that
 * workflow has closed, a start with its id is refused (WorkflowExecutionAlreadyStartedError).
 * `customerEmail` makes the workflow findable by email in the Temporal UI.
 */
export async function startSubscription(
  client: Client,
  taskQueue: string,
  input: Omit<SubscriptionWorkflowInput, 'carried'>,
  { customerEmail }: { customerEmail?: string } = {},
): Promise<ActivationResult> {
  const customer = { userId: input.userId, email: customerEmail };
  const startWorkflowOperation = new WithStartWorkflowOperation<typeof subscriptionWorkflow>('subscriptionWorkflow', {
    workflowId: subscriptionWorkflowId(input.subscriptionId),
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    typedSearchAttributes: [...customerAttributes(customer), { key: PlanCodeAttribute, value: input.plan.code }],
    staticSummary: subscriptionSummary(input.plan.code, customer),
    staticDetails: planTermsDetails(input.plan),
  });
  return client.workflow.executeUpdateWithStart(activationUpdate, { startWorkflowOperation });
}

export function subscriptionHandle(client: Client, subscriptionId: string): SubscriptionHandle {
  return client.workflow.getHandle<typeof subscriptionWorkflow>(subscriptionWorkflowId(subscriptionId));
}

/** Fails (WorkflowUpdateFailedError) when the subscription has already ended; WorkflowNotFoundError once its workflow is gone. */
export function cancelSubscription(client: Client, subscriptionId: string, atPeriodEnd: boolean): Promise<SubscriptionSnapshot> {
  return subscriptionHandle(client, subscriptionId).executeUpdate(cancelSubscriptionUpdate, { args: [{ atPeriodEnd }] });
}

/**
 * While past due the new method is charged at once; the answer shows that retry's outcome. The
 * same `updateId` again (while the workflow runs the same run) gets the first call's answer and
 * changes nothing.
 */
export function changePaymentMethod(
  client: Client,
  subscriptionId: string,
  paymentMethod: string,
  { updateId }: { updateId?: string } = {},
): Promise<SubscriptionSnapshot> {
  return subscriptionHandle(client, subscriptionId).executeUpdate(updatePaymentMethodUpdate, {
    args: [{ paymentMethod }],
    ...(updateId ? { updateId } : {}),
  });
}

export function getSubscriptionState(client: Client, subscriptionId: string): Promise<SubscriptionSnapshot> {
  return subscriptionHandle(client, subscriptionId).query(subscriptionStateQuery);
}

/** Staff: charge the unpaid period now; the workflow ignores it unless the subscription is past due. */
export function retryPaymentNow(client: Client, subscriptionId: string): Promise<void> {
  return subscriptionHandle(client, subscriptionId).signal(retryPaymentNowSignal);
}

/** Staff: move the end of the grace period by `by` (ISO-8601); ignored unless past due. */
export function extendGrace(client: Client, subscriptionId: string, by: string): Promise<void> {
  return subscriptionHandle(client, subscriptionId).signal(extendGraceSignal, { by });
}

/** What the payment webhook sends when a pending subscription charge settles. */
export function signalPaymentSettled(client: Client, subscriptionId: string, settlement: PaymentSettlement): Promise<void> {
  return subscriptionHandle(client, subscriptionId).signal(paymentSettledSignal, settlement);
}
