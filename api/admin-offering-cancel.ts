/**
 * The business cancels an offering, POST /api/v1/admin/offerings/{id}/cancel (role `staff`):
 * the offering's cancellation workflow (workflows/offering) is started with an update that
 * answers once the offering is marked canceled, so the 202 shows it canceled while the refunds
 * of its bookings go on durably. A repeat starts nothing: a canceled offering is answered as it
 * is, and a request racing the first one reaches the same workflow (its id is the offering's).
 */
import { WithStartWorkflowOperation, WorkflowExecutionAlreadyStartedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { offerings } from '../db/schema';
import { offeringCanceledUpdate, offeringCancellationWorkflow, offeringCancellationWorkflowId } from '../workflows/offering';
import { OfferingIdAttribute } from '../workflows/search-attributes';
import { recordStaffAction } from './audit';
import { currentUser } from './auth';
import { json, problems, type ApiOperation } from './contract';
import { taskQueuesOf, type AppDeps } from './deps';
import { offeringJsonSchema, readUnits, toOfferingJson } from './offering';
import { HttpProblem } from './problem';
import { logWorkflow } from './request-context';
import { apiRouter } from './route';
import { workflowLinkFields, workflowLinker } from './temporal-ui';
import { nonBlankText, parseBody, parseParams } from './validation';
import { answerDeadline } from './workflow-answer';

type OfferingRow = typeof offerings.$inferSelect;

const idParamsSchema = z.strictObject({ id: z.uuid() });
const cancelOfferingSchema = z.strictObject({
  reason: nonBlankText(1000).meta({ description: 'Why the business cancels; told to every customer and kept in the audit log.' }),
});
const canceledAnswer = z.strictObject({ offering: offeringJsonSchema, cancellation: z.strictObject(workflowLinkFields) });

export function adminOfferingCancelRoutes(deps: AppDeps): Router {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  const { router, route } = apiRouter(deps);

  route(adminOfferingCancelApi.cancel, async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const { reason } = parseBody(cancelOfferingSchema, req.body);
    const offering = await findOffering(deps, id);
    const workflowId = offeringCancellationWorkflowId(id);
    logWorkflow(req, res, workflowId);
    if (offering.status !== 'canceled') {
      if (offering.endsAt.getTime() <= Date.now()) {
        throw new HttpProblem(409, 'Offering has ended', `Offering ${id} ended at ${offering.endsAt.toISOString()}; it can no longer be canceled.`);
      }
      const start = new WithStartWorkflowOperation(offeringCancellationWorkflow, {
        workflowId,
        taskQueue: taskQueuesOf(deps).bookings,
        args: [{ offeringId: id, reason }],
        // A request racing the first one attaches to its workflow instead of starting another.
        workflowIdConflictPolicy: 'USE_EXISTING',
        typedSearchAttributes: [{ key: OfferingIdAttribute, value: id }],
        staticSummary: `Cancel ${offering.name}: refund every booking`,
      });
      try {
        await withinAnswerTime(() => temporal.workflow.executeUpdateWithStart(offeringCanceledUpdate, { startWorkflowOperation: start }));
      } catch (err) {
        // Closed already (it finished: the row says canceled) or still marking: the row answers below.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw err;
      }
      await recordStaffAction(db, {
        actorId: currentUser(req).id,
        action: 'offering.cancel',
        target: { type: 'offering', id },
        reason,
        details: { workflowId },
      });
    }
    const current = await findOffering(deps, id);
    const unitJson = (await readUnits(db, [id])).get(id) ?? [];
    res.status(202).json({ offering: toOfferingJson(current, unitJson), cancellation: link(workflowId) });
  });

  return router;
}

async function findOffering({ db }: AppDeps, id: string): Promise<OfferingRow> {
  const [offering] = await db.select().from(offerings).where(eq(offerings.id, id));
  if (!offering) throw new HttpProblem(404, 'Offering not found', `There is no offering ${id}.`);
  return offering;
}

export const adminOfferingCancelApi = {
  cancel: {
    method: 'post',
    path: '/api/v1/admin/offerings/{id}/cancel',
    summary: 'Staff: the business cancels an offering; every booking is refunded in full, every customer told',
    description:
      'Answers 202 once the offering is canceled (no longer bookable); its holds are released, its waitlist closed and each ' +
      'confirmed or checked-in booking refunded in full and canceled by the cancellation workflow (`cancellation` links it ' +
      'in the Temporal UI, with its progress). A repeat changes nothing and answers the canceled offering.',
    auth: 'staff',
    request: { params: idParamsSchema, body: cancelOfferingSchema },
    responses: {
      202: json('The offering, canceled; the refunds go on in the cancellation workflow', canceledAnswer),
      ...problems(400, [404, 'No such offering'], [409, 'The offering has already ended']),
    },
  },
} satisfies Record<string, ApiOperation>;
