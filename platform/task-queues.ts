/** The task queues every process agrees on; tests pass unique names instead so workers never share work. */
export interface TaskQueues {
  /** Subscription and one-time payment workflows, their projections and mail. */
  billing: string;
  /** Hold and booking workflows, their projections and mail. */
  bookings: string;
  /**
   * Every call to the payment gateway (charge, refund, cancel, customer calls), whichever workflow
   * makes it, so the server's per-queue activity rate limit is the gateway's request limit.
   */
  payments: string;
  /**
   * Subscriptions from their first renewal on (a run continues as new onto this queue), with
   * their projections and mail: background work that may be a minute late, on a worker of its
   * own, so its backlog never stands between a customer and the first run of their subscribe on
   * `billing` (bench/README.md, "Interactive work before background work").
   */
  renewals: string;
}

export const TASK_QUEUES: Readonly<TaskQueues> = {
  billing: 'billing',
  bookings: 'bookings',
  payments: 'payments',
  renewals: 'renewals',
};
