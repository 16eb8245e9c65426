// The offering's cancellation workflow and its contract; the worker's bundle and the API import this folder.
export * from './contract';
export { offeringCancellationWorkflow } from './workflow';
