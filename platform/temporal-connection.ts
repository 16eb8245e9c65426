import { readFileSync } from 'node:fs';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import type { Config } from './config';

type TemporalConfig = Pick<
  Config,
  'TEMPORAL_ADDRESS' | 'TEMPORAL_NAMESPACE' | 'TEMPORAL_API_KEY' | 'TEMPORAL_TLS_CERT_PATH' | 'TEMPORAL_TLS_KEY_PATH'
>;

export interface TemporalTransportOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

/**
 * Address, TLS and API key for a Temporal client `Connection` or a worker `NativeConnection`
 * (both accept this shape). mTLS when a certificate and key are configured; an API key alone
 * implies TLS, as Temporal Cloud requires.
 */
export function temporalTransportOptions(config: TemporalConfig): TemporalTransportOptions {
  const certPath = config.TEMPORAL_TLS_CERT_PATH;
  const keyPath = config.TEMPORAL_TLS_KEY_PATH;
  if (Boolean(certPath) !== Boolean(keyPath)) {
    throw new Error('TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together');
  }
  const options: TemporalTransportOptions = { address: config.TEMPORAL_ADDRESS };
  if (certPath && keyPath) {
    options.tls = { clientCertPair: { crt: readFileSync(certPath), key: readFileSync(keyPath) } };
  } else if (config.TEMPORAL_API_KEY) {
    options.tls = {};
  }
  if (config.TEMPORAL_API_KEY) options.apiKey = config.TEMPORAL_API_KEY;
  return options;
}

export async function connectTemporal(config: TemporalConfig): Promise<{ connection: Connection; client: Client }> {
  const connection = await Connection.connect(temporalTransportOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  return { connection, client };
}
