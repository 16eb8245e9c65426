/** Task queue names in production; tests pass unique ones instead so workers never share work. */
export const TASK_QUEUES = {
  /** Subscriptions and payments. */
  billing: 'billing',
  /** Holds and bookings. */
  bookings: 'bookings',
} as const;
