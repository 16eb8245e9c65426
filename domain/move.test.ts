import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CancellationPolicy } from './booking';
import { moveCurrencyRefusal, moveRefusal, moveTargetRefusal, moveWindowRefusal, type MoveOffering } from './move';

const HOUR = 60 * 60 * 1000;
const now = new Date('2030-06-01T12:00:00Z');
const series = 'b7f0c2de-4d0c-4c53-9d43-0a9e3b1c5f11';
const policy: CancellationPolicy = { freeUntil: 'P1D', lateRefundPercent: 50 };

function offering(overrides: Partial<MoveOffering> = {}): MoveOffering {
  return { id: 'target', seriesId: series, status: 'scheduled', startsAt: new Date(now.getTime() + 72 * HOUR), ...overrides };
}

const from = { ...offering({ id: 'current' }), policy };

describe('moveTargetRefusal', () => {
  test('another scheduled, not started offering of the series is allowed', () => {
    assert.equal(moveTargetRefusal(from, offering(), now), undefined);
  });

  test('a booking whose offering has no series has nowhere to move', () => {
    assert.equal(moveTargetRefusal({ seriesId: null }, offering({ seriesId: null }), now)?.code, 'not_in_series');
  });

  test('an offering of another series, or of none, is refused', () => {
    assert.equal(moveTargetRefusal(from, offering({ seriesId: '2d1f5a4e-0000-4000-8000-000000000000' }), now)?.code, 'other_series');
    assert.equal(moveTargetRefusal(from, offering({ seriesId: null }), now)?.code, 'other_series');
  });

  test('a canceled target is refused, even before it starts', () => {
    assert.equal(moveTargetRefusal(from, offering({ status: 'canceled' }), now)?.code, 'offering_canceled');
  });

  test('a target that starts now or has started is refused', () => {
    assert.equal(moveTargetRefusal(from, offering({ startsAt: now }), now)?.code, 'offering_started');
    assert.equal(moveTargetRefusal(from, offering({ startsAt: new Date(now.getTime() - HOUR) }), now)?.code, 'offering_started');
    assert.equal(moveTargetRefusal(from, offering({ startsAt: new Date(now.getTime() + 1) }), now), undefined);
  });
});

describe('moveWindowRefusal', () => {
  test('allowed while a cancel would refund in full, refused from the late tier on', () => {
    const freeEnds = new Date(from.startsAt.getTime() - 24 * HOUR);
    assert.equal(moveWindowRefusal(from, new Date(freeEnds.getTime() - 1)), undefined);
    assert.equal(moveWindowRefusal(from, freeEnds)?.code, 'outside_free_window');
    assert.equal(moveWindowRefusal(from, new Date(from.startsAt.getTime() + HOUR))?.code, 'outside_free_window');
  });

  test('without a freeUntil the booking may move until its offering starts', () => {
    const open = { startsAt: from.startsAt, policy: { freeUntil: null, lateRefundPercent: 0 } };
    assert.equal(moveWindowRefusal(open, new Date(from.startsAt.getTime() - 1)), undefined);
    assert.equal(moveWindowRefusal(open, from.startsAt)?.code, 'outside_free_window');
  });
});

describe('moveRefusal', () => {
  test('names what is wrong with the target before the window', () => {
    const late = new Date(from.startsAt.getTime() - HOUR);
    assert.equal(
      moveRefusal(from, offering({ status: 'canceled', startsAt: new Date(late.getTime() + 48 * HOUR) }), late)?.code,
      'offering_canceled',
    );
    assert.equal(moveRefusal(from, offering(), late)?.code, 'outside_free_window');
    assert.equal(moveRefusal(from, offering(), now), undefined);
  });
});

describe('moveCurrencyRefusal', () => {
  test('a move between currencies is refused', () => {
    assert.equal(moveCurrencyRefusal('usd', 'usd'), undefined);
    assert.equal(moveCurrencyRefusal('usd', 'eur')?.code, 'other_currency');
  });
});
