/**
 * The shared deploy files as the local commands read them: the dynamic config every Temporal
 * server gets (scripts/services.ts), the nginx template (scripts/load-balancer.ts), and which
 * endpoints file `npm run manage` reads (scripts/local-endpoints.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { chooseEndpointsFile } from '../scripts/local-endpoints';
import { renderLoadBalancerConfig } from '../scripts/load-balancer';
import { DEV_SERVER_DYNAMIC_CONFIG, readDynamicConfig } from '../scripts/services';
import { TEMPORAL_DYNAMIC_CONFIG_FILE } from '../scripts/temporal-cluster';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cluster-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('deploy/temporal/dynamic-config.yaml', () => {
  test('is what the dev server gets: the poll limits and one partition per task queue', () => {
    assert.deepEqual(readDynamicConfig(TEMPORAL_DYNAMIC_CONFIG_FILE), DEV_SERVER_DYNAMIC_CONFIG);
    assert.deepEqual(DEV_SERVER_DYNAMIC_CONFIG, {
      'history.transferProcessorMaxPollRPS': 1000,
      'history.visibilityProcessorMaxPollRPS': 1000,
      'matching.numTaskqueueReadPartitions': 1,
      'matching.numTaskqueueWritePartitions': 1,
    });
  });

  test('a shape the dev server cannot be given (a constraint) is refused, naming the line', () => {
    const file = path.join(dir, 'constrained.yaml');
    writeFileSync(file, 'matching.numTaskqueueReadPartitions:\n  - value: 4\n    constraints:\n      taskQueueName: billing\n');
    assert.throws(() => readDynamicConfig(file), /constrained\.yaml:3: .*constraints:/);
  });
});

describe('deploy/nginx/billing.conf', () => {
  test('takes the listen address and the upstreams, and leaves nginx’s own variables alone', () => {
    const config = renderLoadBalancerConfig({ listen: '127.0.0.1:3100', apiServers: 'server 127.0.0.1:41001;\n  server 127.0.0.1:41002;' });
    assert.match(config, /listen 127\.0\.0\.1:3100;/);
    assert.match(config, /server 127\.0\.0\.1:41001;\s+server 127\.0\.0\.1:41002;/);
    assert.match(config, /proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/);
    assert.match(config, /location = \/metrics \{\s+return 404;/);
    assert.match(config, /proxy_buffering off;/);
    assert.doesNotMatch(config, /\$\{BILLING_[A-Z_]+\}/);
  });
});

describe('the endpoints file npm run manage reads', () => {
  test('ENDPOINTS_FILE names it, relative to the working directory', () => {
    assert.equal(chooseEndpointsFile({ ENDPOINTS_FILE: '.data/cluster/endpoints.json' }), path.resolve('.data/cluster/endpoints.json'));
  });
});
