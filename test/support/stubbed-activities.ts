/**
 * Stand-in activities for fast workflow tests: plain functions that answer as a test scripts
 * them and record, per workflow, which activity was called with what and in which order.
 */
import { after, afterEach, before, beforeEach } from 'node:test';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ChargeResult } from '../../domain/payment';
import { Worker } from '@temporalio/worker';
import { bundleWorkflows } from '../../platform/worker';
import { createTimeSkippingEnv } from './temporal';

export interface ActivityCall {
  name: string;
  input: unknown;
}

/** Every stubbed activity call, by the id of the workflow that made it, in the order they ran. */
export class ActivityCalls {
  private readonly byWorkflow = new Map<string, ActivityCall[]>();

  record(name: string, input: unknown): void {
    const workflowId = Context.current().info.workflowExecution?.workflowId;
    if (!workflowId) throw new Error(`${name} ran outside any workflow`);
    const calls = this.byWorkflow.get(workflowId) ?? [];
    calls.push({ name, input });
    this.byWorkflow.set(workflowId, calls);
  }

  of(workflowId: string): ActivityCall[] {
    return this.byWorkflow.get(workflowId) ?? [];
  }

  /** The activity names a workflow called, in order. */
  names(workflowId: string): string[] {
    return this.of(workflowId).map((call) => call.name);
  }

  /** The inputs of one activity's calls by a workflow, in order. */
  inputs<T>(workflowId: string, name: string): T[] {
    return this.of(workflowId)
      .filter((call) => call.name === name)
      .map((call) => call.input as T);
  }
}

/**
 * Activities named as the worker registers them, each recording its call before answering:
 * `answers[name](input)` gives the answer (or throws, as a failing activity does).
 */
export function stubActivities<A extends Record<string, (input: never) => unknown>>(calls: ActivityCalls, answers: A): A {
  return Object.fromEntries(
    Object.entries(answers).map(([name, answer]) => [
      name,
      async (input: never) => {
        calls.record(name, input);
        return answer(input);
      },
    ]),
  ) as A;
}

/** A stubbed gateway's answer to a charge: a failure is a hard decline with `failureCode`. */
export function stubChargeResult(paymentId: string, status: ChargeResult['status'], failureCode: string | null = null): ChargeResult {
  const failed = status === 'failed';
  return {
    paymentId,
    status,
    gatewayPaymentId: `pi_${paymentId}`,
    failureCode: failed ? failureCode : null,
    decline: failed ? 'hard' : null,
    creditApplied: 0,
  };
}

/** What a gateway that does not answer in time looks like to a workflow: a retryable activity failure. */
export function gatewayTimeout(): Error {
  return ApplicationFailure.retryable('the gateway did not answer in time', 'GatewayTimeoutError');
}

export interface StubbedWorker {
  /** The time-skipping server, once the test file's `before` has run. */
  readonly env: TestWorkflowEnvironment;
}

/**
 * For the whole test file (or, with `perTest`, for each test): a time-skipping server and one
 * worker running every workflow (the worker's bundle) with the stubbed `activities` on
 * `taskQueue` (the workflows' payments queue too). A server per test costs about a second and
 * keeps what one test leaves running (renewing subscriptions, a clock locked by an activity in
 * flight) from reaching the next.
 */
export function runStubbedWorker(taskQueue: string, activities: object, { perTest = false } = {}): StubbedWorker {
  const state: { env?: TestWorkflowEnvironment; worker?: Worker; running?: Promise<void> } = {};
  (perTest ? beforeEach : before)(async () => {
    state.env = await createTimeSkippingEnv();
    state.worker = await Worker.create({ connection: state.env.nativeConnection, taskQueue, workflowBundle: await bundleWorkflows(), activities });
    state.running = state.worker.run();
  });
  (perTest ? afterEach : after)(async () => {
    state.worker?.shutdown();
    await state.running;
    await state.env?.teardown();
  });
  return {
    get env(): TestWorkflowEnvironment {
      if (!state.env) throw new Error('the stubbed worker starts in before()');
      return state.env;
    },
  };
}
