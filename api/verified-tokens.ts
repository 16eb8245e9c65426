import { LruMap } from '../platform/lru-map';

/**
 * Bearer tokens this process has verified, kept until their `exp`, so that a client sending the
 * same token with every request is verified once rather than on each (jose's HMAC goes through
 * WebCrypto and a hop to libuv's thread pool, then the claims' schema: a good part of the API's
 * CPU for a cheap request such as a refused hold).
 *
 * Why this is as safe as verifying every time:
 * - Keyed by the whole token string (header, claims and signature), so only the exact bytes
 *   that passed verification are ever accepted from here: a token with a changed signature or
 *   claim is another key and is verified (and refused) on its own.
 * - Only tokens that passed are kept; an invalid token is verified, and refused, every time.
 * - Nothing a verification judges can change for the same string except time, and the time is
 *   judged here as jose judges it: refused from `exp` on (whole seconds, no clock tolerance).
 *   Tokens without `exp`, or with `nbf` (not valid yet: time would matter twice), are not kept.
 * - The API has no revocation of tokens (no logout, no deny list; a token carries its user's id
 *   and role): were one added, it must clear this set (`forget`) or check before `get`.
 * - Bounded: at most `max` tokens, the least recently used dropped first; one set per secret.
 */
export class VerifiedTokens<User extends object> {
  readonly #kept: LruMap<string, { user: Readonly<User>; exp: number }>;

  constructor(
    max: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.#kept = new LruMap(max);
  }

  get size(): number {
    return this.#kept.size;
  }

  /** The user of a token verified before and not expired since, else undefined (verify it). */
  get(token: string): Readonly<User> | undefined {
    const kept = this.#kept.get(token);
    if (!kept) return undefined;
    if (kept.exp > Math.floor(this.nowMs() / 1000)) return kept.user;
    this.#kept.delete(token);
    return undefined;
  }

  /** Keeps a token that jose has just verified, with its claims as verified. */
  keep(token: string, user: User, claims: { exp?: number; nbf?: number }): void {
    if (typeof claims.exp !== 'number' || claims.nbf !== undefined) return;
    // Frozen: every request of the token shares this object.
    this.#kept.set(token, { user: Object.freeze({ ...user }), exp: claims.exp });
  }

  forget(token: string): void {
    this.#kept.delete(token);
  }
}
