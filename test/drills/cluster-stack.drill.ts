/**
 * The cluster stack itself (bench/stack.ts with `temporal: 'cluster'`): the Temporal server proper
 * on PostgreSQL with its UI, two workers and two APIs behind nginx. A subscription made through
 * the load balancer is charged and its workflow runs on the cluster; nginx hides /metrics and
 * stops sending to an API instance that died; everything is gone after stop().
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { stackProcessIds } from '../../bench/stack';
import { createTestUser, requestJson } from '../support/api';
import { insertTestPlan } from '../support/subscription-fixtures';
import { startDrill } from './drill-support';

test('the cluster stack serves a subscription through the load balancer and stops cleanly', { timeout: 10 * 60_000 }, async () => {
  const drill = await startDrill({ api: true, temporal: 'cluster', workers: 2, apis: 2 });
  const { stack, deps } = drill;
  let failed = true;
  let pids: number[] = [];
  try {
    assert.equal(stack.workers.length, 2);
    assert.deepEqual(
      stack.apis.map((api) => api.name),
      ['api-1', 'api-2'],
    );
    assert.ok(stack.loadBalancer, 'two APIs get a load balancer');
    assert.notEqual(stack.apiUrl, stack.apiInstanceUrls[0], 'apiUrl is the load balancer');
    pids = Object.values(stackProcessIds(stack)).flat();
    assert.equal(pids.length, 8, 'temporal, 2 workers, 2 APIs, postgresql, redis, nginx');

    const ui = await fetch(stack.temporalUiUrl!);
    assert.equal(ui.status, 200, 'the Temporal UI answers');
    await ui.arrayBuffer();
    const { namespaceInfo } = await deps.temporal.connection.workflowService.describeNamespace({ namespace: 'default' });
    assert.equal(namespaceInfo?.name, 'default');

    const user = await createTestUser(deps);
    const plan = await insertTestPlan(deps.db, { interval: 'P1M' });
    const subscribe = () =>
      requestJson(`${stack.apiUrl}/api/v1/subscriptions/subscribe`, {
        body: { planId: plan.planId, paymentMethod: 'pm_card_visa' },
        headers: { ...user.headers, 'idempotency-key': key },
      });
    const key = randomUUID();
    const created = await subscribe();
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.payment.status, 'succeeded');
    const subscriptionId = created.body.subscription.id as string;
    const description = await deps.temporal.workflow.getHandle(`subscription-${subscriptionId}`).describe();
    assert.equal(description.status.name, 'RUNNING', 'the subscription workflow runs on the cluster');

    const metrics = await fetch(`${stack.apiUrl}/metrics`);
    assert.equal(metrics.status, 404, 'the load balancer does not serve /metrics');
    await metrics.arrayBuffer();

    await stack.apis[0].kill();
    const statuses = [];
    for (let i = 0; i < 10; i++) statuses.push((await requestJson(`${stack.apiUrl}/healthz`)).status);
    assert.deepEqual(statuses, Array(10).fill(200), 'with api-1 dead, every request is answered by api-2');
    const replayed = await subscribe();
    assert.equal(replayed.status, 201);
    assert.equal(replayed.body.subscription.id, subscriptionId, 'the same Idempotency-Key through the other instance replays the answer');
    await stack.apis[0].start();
    failed = false;
  } finally {
    await drill.stop({ failed });
  }
  const alive = pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  assert.deepEqual(alive, [], 'stop() ended every process of the stack');
});
