import { ApplicationFailure } from '@temporalio/common';
import { grantCredit, InvalidCreditError } from '../db/credits';
import type { Database } from '../db/client';
import { InvalidMoneyError } from '../domain/money';
import type { CreditBalance, CreditGrant } from '../domain/credit';
import type { Logger } from '../platform/logger';

export interface CreditActivityDeps {
  db: Database;
  logger: Logger;
}

export type CreditActivities = ReturnType<typeof createCreditActivities>;

/**
 * Credit for customers' balances, from workflows: a plan change's proration (its negative net),
 * the credit part of a refund. Each grant happens once per idempotency key (the ledger's unique
 * column), so a retried activity or a replayed workflow adds nothing more.
 */
export function createCreditActivities({ db, logger }: CreditActivityDeps) {
  return {
    /** Adds `amount` to the balance once per key; answers the balance after (repeats: as it is now). */
    grantCredit: async (grant: CreditGrant): Promise<CreditBalance> => {
      try {
        const { granted, ...balance } = await grantCredit(db, grant);
        logger.info({ userId: grant.userId, kind: grant.kind, amount: grant.amount, currency: balance.currency, granted }, 'credit granted');
        return balance;
      } catch (error) {
        // A bad amount or currency cannot get better by retrying.
        if (error instanceof InvalidCreditError || error instanceof InvalidMoneyError) {
          throw ApplicationFailure.nonRetryable(error.message, 'InvalidCredit');
        }
        throw error;
      }
    },
  };
}
