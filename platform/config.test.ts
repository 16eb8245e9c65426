import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './config';
import { TASK_QUEUES } from './task-queues';
import { workerTuning } from './worker';

// The variables every process needs; each test adds what it is about.
const REQUIRED = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/billing',
  REDIS_URL: 'redis://127.0.0.1:6379',
  JWT_SECRET: 'j'.repeat(32),
  STRIPE_WEBHOOK_SECRET: 'whsec_test',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('payment settings', () => {
  test('development and test take the sandbox and a local action URL unless told otherwise', () => {
    const config = loadConfig(REQUIRED);
    assert.equal(config.PAYMENT_GATEWAY, 'sandbox');
    assert.equal(config.PAYMENT_ACTION_URL, 'http://localhost:3000/pay/{paymentId}');
    // A key alone no longer picks the gateway: the sandbox stays the sandbox.
    assert.equal(loadConfig({ ...REQUIRED, STRIPE_SECRET_KEY: 'sk_test_x' }).PAYMENT_GATEWAY, 'sandbox');
  });

  test('production must name its gateway and where customers complete a payment', () => {
    const problems = problemsOf({ ...REQUIRED, NODE_ENV: 'production' });
    assert.ok(
      problems.some((p) => p.startsWith('PAYMENT_GATEWAY:')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('PAYMENT_ACTION_URL:')),
      problems.join('\n'),
    );
    const chosen = loadConfig({
      ...REQUIRED,
      NODE_ENV: 'production',
      PAYMENT_GATEWAY: 'sandbox',
      PAYMENT_ACTION_URL: 'https://app.example.com/pay/{paymentId}',
    });
    assert.equal(chosen.PAYMENT_GATEWAY, 'sandbox');
  });

  test('the stripe gateway without its key stops the start-up, naming STRIPE_SECRET_KEY', () => {
    const problems = problemsOf({ ...REQUIRED, PAYMENT_GATEWAY: 'stripe' });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^STRIPE_SECRET_KEY: required when PAYMENT_GATEWAY=stripe/);
    assert.equal(loadConfig({ ...REQUIRED, PAYMENT_GATEWAY: 'stripe', STRIPE_SECRET_KEY: 'sk_test_x' }).PAYMENT_GATEWAY, 'stripe');
  });

  test('an action URL must be a URL with {paymentId} in it', () => {
    for (const bad of ['not a url', 'https://app.example.com/pay']) {
      const problems = problemsOf({ ...REQUIRED, PAYMENT_ACTION_URL: bad });
      assert.ok(
        problems.some((p) => p.startsWith('PAYMENT_ACTION_URL:')),
        `${bad}: ${problems.join('\n')}`,
      );
    }
    assert.deepEqual(problemsOf({ ...REQUIRED, PAYMENT_GATEWAY: 'paypal' }).length, 1);
  });
});

test('HOLDS_PER_CUSTOMER_MAX is 20 unless set, and a whole number of at least 1', () => {
  assert.equal(loadConfig(REQUIRED).HOLDS_PER_CUSTOMER_MAX, 20);
  assert.equal(loadConfig({ ...REQUIRED, HOLDS_PER_CUSTOMER_MAX: '3' }).HOLDS_PER_CUSTOMER_MAX, 3);
  for (const bad of ['0', '2.5', 'many']) {
    const problems = problemsOf({ ...REQUIRED, HOLDS_PER_CUSTOMER_MAX: bad });
    assert.ok(
      problems.some((p) => p.startsWith('HOLDS_PER_CUSTOMER_MAX:')),
      `${bad}: ${problems.join('\n')}`,
    );
  }
});

describe('live availability streams', () => {
  test('limits default to 20 per address and 1000 per process, for 30 minutes each', () => {
    const config = loadConfig(REQUIRED);
    assert.deepEqual([config.SSE_STREAMS_PER_IP, config.SSE_STREAMS_MAX, config.SSE_STREAM_MAX_AGE], [20, 1000, 'PT30M']);
  });

  test('a maximum age is a fixed length longer than zero', () => {
    for (const bad of ['P1M', 'PT0S', '30m']) {
      const problems = problemsOf({ ...REQUIRED, SSE_STREAM_MAX_AGE: bad });
      assert.ok(
        problems.some((p) => p.startsWith('SSE_STREAM_MAX_AGE:')),
        `${bad}: ${problems.join('\n')}`,
      );
    }
    assert.equal(loadConfig({ ...REQUIRED, SSE_STREAM_MAX_AGE: 'PT2S' }).SSE_STREAM_MAX_AGE, 'PT2S');
  });
});

test('WORKER_STICKY_QUEUE_TIMEOUT is PT1M unless set, reaches the worker in ms, and refuses what is no fixed duration', () => {
  assert.equal(workerTuning(loadConfig(REQUIRED)).stickyQueueScheduleToStartTimeoutMs, 60_000);
  assert.equal(workerTuning(loadConfig({ ...REQUIRED, WORKER_STICKY_QUEUE_TIMEOUT: 'PT5M' })).stickyQueueScheduleToStartTimeoutMs, 300_000);
  for (const bad of ['60s', 'P1M', 'PT0S']) {
    assert.ok(
      problemsOf({ ...REQUIRED, WORKER_STICKY_QUEUE_TIMEOUT: bad }).some((p) => p.startsWith('WORKER_STICKY_QUEUE_TIMEOUT:')),
      bad,
    );
  }
});

test('the renewals worker runs WORKER_RENEWALS_MAX_CONCURRENT_WORKFLOW_TASKS (4 unless set) workflow tasks at once; the other queues WORKER_MAX_CONCURRENT_WORKFLOW_TASKS', () => {
  const tuning = workerTuning(loadConfig(REQUIRED));
  assert.deepEqual(tuning.maxConcurrentWorkflowTaskExecutionsByQueue, { [TASK_QUEUES.renewals]: 4 });
  assert.equal(tuning.maxConcurrentWorkflowTaskExecutions, 40);
  const set = workerTuning(loadConfig({ ...REQUIRED, WORKER_RENEWALS_MAX_CONCURRENT_WORKFLOW_TASKS: '8' }));
  assert.deepEqual(set.maxConcurrentWorkflowTaskExecutionsByQueue, { [TASK_QUEUES.renewals]: 8 });
  assert.ok(
    problemsOf({ ...REQUIRED, WORKER_RENEWALS_MAX_CONCURRENT_WORKFLOW_TASKS: '1' }).some((p) =>
      p.startsWith('WORKER_RENEWALS_MAX_CONCURRENT_WORKFLOW_TASKS:'),
    ),
  );
});

test('HOLD_MAX_EXTENSION is PT15M unless set, and a fixed duration longer than zero', () => {
  assert.equal(loadConfig(REQUIRED).HOLD_MAX_EXTENSION, 'PT15M');
  assert.equal(loadConfig({ ...REQUIRED, HOLD_MAX_EXTENSION: 'PT5M' }).HOLD_MAX_EXTENSION, 'PT5M');
  for (const bad of ['15m', 'P1M', 'PT0S']) {
    const problems = problemsOf({ ...REQUIRED, HOLD_MAX_EXTENSION: bad });
    assert.ok(
      problems.some((p) => p.startsWith('HOLD_MAX_EXTENSION:')),
      `${bad}: ${problems.join('\n')}`,
    );
  }
});

test('API_METRICS_ADDRESS is unset unless set; a bare port means loopback; anything else is refused', () => {
  assert.equal(loadConfig(REQUIRED).API_METRICS_ADDRESS, undefined);
  assert.deepEqual(loadConfig({ ...REQUIRED, API_METRICS_ADDRESS: '9465' }).API_METRICS_ADDRESS, { host: '127.0.0.1', port: 9465 });
  assert.deepEqual(loadConfig({ ...REQUIRED, API_METRICS_ADDRESS: '0.0.0.0:9465' }).API_METRICS_ADDRESS, { host: '0.0.0.0', port: 9465 });
  for (const bad of ['metrics', '127.0.0.1:', ':9465', '127.0.0.1:70000']) {
    const problems = problemsOf({ ...REQUIRED, API_METRICS_ADDRESS: bad });
    assert.ok(
      problems.some((p) => p.startsWith('API_METRICS_ADDRESS:')),
      `${bad}: ${problems.join('\n')}`,
    );
  }
});
