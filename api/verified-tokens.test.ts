import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { VerifiedTokens } from './verified-tokens';

const user = { id: 'u1', role: 'customer' };

describe('verified tokens', () => {
  test('a kept token is accepted until the second of its exp, then refused and forgotten', () => {
    let now = 1_000_000_000;
    const kept = new VerifiedTokens<typeof user>(10, () => now);
    kept.keep('a.b.c', user, { exp: 1_000_010 });
    assert.deepEqual(kept.get('a.b.c'), user);
    now = 1_000_009_999;
    assert.deepEqual(kept.get('a.b.c'), user, 'valid in the second before exp');
    now = 1_000_010_000;
    assert.equal(kept.get('a.b.c'), undefined, 'refused from exp on, as jose refuses it');
    now = 1_000_000_000;
    assert.equal(kept.get('a.b.c'), undefined, 'forgotten once found expired');
  });

  test('only the exact token string is accepted, never a prefix or a variant of it', () => {
    const kept = new VerifiedTokens<typeof user>(10, () => 0);
    kept.keep('header.claims.signature', user, { exp: 100 });
    for (const other of ['header.claims.signaturX', 'header.claims.', 'header.claims', 'HEADER.claims.signature', 'header.claims.signature ']) {
      assert.equal(kept.get(other), undefined, other);
    }
  });

  test('tokens without exp, or with nbf, are never kept', () => {
    const kept = new VerifiedTokens<typeof user>(10, () => 0);
    kept.keep('no-exp', user, {});
    kept.keep('not-before', user, { exp: 100, nbf: 1 });
    assert.equal(kept.get('no-exp'), undefined);
    assert.equal(kept.get('not-before'), undefined);
    assert.equal(kept.size, 0);
  });

  test('at most max tokens are kept, the least recently used dropped first', () => {
    const kept = new VerifiedTokens<typeof user>(2, () => 0);
    kept.keep('t1', user, { exp: 100 });
    kept.keep('t2', user, { exp: 100 });
    assert.ok(kept.get('t1'));
    kept.keep('t3', user, { exp: 100 });
    assert.equal(kept.size, 2);
    assert.equal(kept.get('t2'), undefined, 'the least recently used went');
    assert.ok(kept.get('t1'));
    assert.ok(kept.get('t3'));
  });

  test('the user handed out cannot be changed by one request for the next', () => {
    const kept = new VerifiedTokens<{ id: string; role: string }>(2, () => 0);
    const original = { id: 'u1', role: 'customer' };
    kept.keep('t', original, { exp: 100 });
    original.role = 'staff';
    const got = kept.get('t')!;
    assert.equal(got.role, 'customer');
    assert.throws(() => {
      (got as { role: string }).role = 'staff';
    });
  });
});
