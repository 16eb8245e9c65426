/** A Server-Sent Events client for tests: what EventSource does, one message at a time. */

export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** The next message (comments skipped); undefined once the server ended the stream. */
  next(): Promise<SseMessage | undefined>;
  /** Hangs up, as a closed browser tab does. */
  close(): void;
}

/** Opens `url`; a refused stream (status not 200) answers its status, and `next()` nothing. */
export async function openSseStream(url: string, headers: Record<string, string> = {}): Promise<SseStream & { problem?: unknown }> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  if (response.status !== 200) {
    const problem: unknown = await response.json();
    return { status: response.status, headers: response.headers, problem, next: () => Promise.resolve(undefined), close: () => abort.abort() };
  }
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ended = false;
  return {
    status: response.status,
    headers: response.headers,
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = parseBlock(block);
          if (message) return message;
          continue;
        }
        if (ended) return undefined;
        const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (chunk.done) ended = true;
        else buffer += decoder.decode(chunk.value, { stream: true });
      }
    },
    close: () => abort.abort(),
  };
}

function parseBlock(block: string): SseMessage | undefined {
  const message: SseMessage = {};
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = line.slice(0, colon) as keyof SseMessage;
    message[field] = line.slice(colon + 1).replace(/^ /, '');
  }
  return Object.keys(message).length > 0 ? message : undefined;
}

/** The `seq` of an event id `<epoch>-<seq>`. */
export function seqOf(message: SseMessage | undefined): number {
  const match = /^\d+-(\d+)$/.exec(message?.id ?? '');
  if (!match) throw new Error(`not an event id: ${JSON.stringify(message)}`);
  return Number(match[1]);
}
