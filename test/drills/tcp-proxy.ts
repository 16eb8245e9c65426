/**
 * A loopback TCP proxy whose link can be cut and restored: a drill's way to take a shared server
 * (the test runner's Redis) away from one stack only, as a stopped server would be: open
 * connections reset, new ones refused. It can also make the link slow: every chunk the client
 * sends reaches the server `latencyMs` later (a gateway that answers in 15 s, say).
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Resets every connection and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  /** Delays what clients send by this long from now on (0: no delay). */
  setLatency(ms: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let latencyMs = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    // Each chunk waits the same latency, so timers keep them in order.
    client.on('data', (chunk) => {
      if (latencyMs === 0) upstream.write(chunk);
      else setTimeout(() => upstream.write(chunk), latencyMs);
    });
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const stopListening = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  const resetAll = () => {
    for (const socket of sockets) socket.resetAndDestroy();
  };
  const port = await listen(0);
  return {
    port,
    cut: async () => {
      const closed = stopListening();
      resetAll();
      await closed;
    },
    restore: async () => {
      await listen(port);
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    close: async () => {
      const closed = stopListening();
      resetAll();
      await closed;
    },
  };
}
