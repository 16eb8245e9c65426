// The subscription workflow and its contract; the worker's bundle and the API import this folder.
export * from './contract';
export { WITHDRAW_PENDING_ON_CANCEL_PATCH } from './charging';
export { LONGEST_GRACE_EXTENSION, subscriptionWorkflow } from './workflow';
