/**
 * Stand-in activities for fast workflow tests: plain functions that answer as a test scripts
 * them and record, per workflow, which activity was called with what and in which order.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

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

/** What a gateway that does not answer in time looks like to a workflow: a retryable activity failure. */
export function gatewayTimeout(): Error {
  return ApplicationFailure.retryable('the gateway did not answer in time', 'GatewayTimeoutError');
}
