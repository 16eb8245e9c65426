/** The workflows the booking tests' workers run: holds and bookings only, for a quick bundle. */
export * from '../../workflows/hold';
export * from '../../workflows/booking';
