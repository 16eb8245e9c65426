// Every workflow the worker runs; the worker bundles this file once for both task queues.
export * from './payment';
export * from './payment-refund';
export * from './subscription';
export * from './hold';
export * from './booking';
export * from './offering';
export * from './retention';
export * from './staff-alert';
export * from './waitlist';
