import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { offeringClosedReason, reminderSchedule, remindersProblem, waitlistOfferTtlProblem } from './offering';

describe('offering rules', () => {
  test('reminders are positive offsets of days, hours or minutes, at most five, none twice', () => {
    assert.equal(remindersProblem([]), undefined);
    assert.equal(remindersProblem(['P1D', 'PT2H', 'PT15M']), undefined);
    assert.match(remindersProblem(['P1M'])!, /not a positive ISO-8601 duration/, 'a month has no fixed length');
    assert.match(remindersProblem(['PT0S'])!, /not a positive/);
    assert.match(remindersProblem(['soon'])!, /not a positive/);
    assert.match(remindersProblem(['P91D'])!, /more than 90 days/);
    assert.match(remindersProblem(['P1D', 'PT24H'])!, /listed twice/, 'the same instant written two ways');
    assert.match(remindersProblem(['PT1H', 'PT2H', 'PT3H', 'PT4H', 'PT5H', 'PT6H'])!, /At most 5/);
  });

  test('a waitlist offer lasts a positive duration of at most a day', () => {
    assert.equal(waitlistOfferTtlProblem('PT15M'), undefined);
    assert.equal(waitlistOfferTtlProblem('PT24H'), undefined);
    assert.match(waitlistOfferTtlProblem('P2D')!, /at most a day/);
    assert.match(waitlistOfferTtlProblem('P1M')!, /positive ISO-8601/);
    assert.match(waitlistOfferTtlProblem('-PT1M')!, /positive ISO-8601/);
  });

  test('reminders fall due their offset before the start, earliest first', () => {
    const startsAt = new Date('2030-03-01T19:00:00Z');
    assert.deepEqual(
      reminderSchedule(startsAt, ['PT2H', 'P1D']).map((r) => [r.offset, r.at.toISOString()]),
      [
        ['P1D', '2030-02-28T19:00:00.000Z'],
        ['PT2H', '2030-03-01T17:00:00.000Z'],
      ],
    );
  });

  test('an offering takes bookings while scheduled and not started', () => {
    const startsAt = new Date('2030-03-01T19:00:00Z');
    const before = new Date('2030-03-01T18:59:59Z');
    assert.equal(offeringClosedReason({ status: 'scheduled', startsAt }, before), undefined);
    assert.match(offeringClosedReason({ status: 'scheduled', startsAt }, startsAt)!, /already started/);
    assert.match(offeringClosedReason({ status: 'canceled', startsAt }, before)!, /canceled/);
  });
});
