/** svcnode library API. */
export { ServiceNodeClient, InvokeTimeoutError, type ServiceNodeClientOptions, type EnqueueOptions } from './queue/client.js';
export { QUEUE_NAME, JOB_NAME } from './queue/constants.js';
export { parseRedisUrl, CLUSTER_PREFIX, type RedisConnection, type RedisTarget } from './queue/connection.js';
export { startWorker, StartAbortedError, type WorkerOptions, type RunningWorker } from './queue/worker.js';
export { invoke, type InvokeDeps, type InvokeOptions } from './invoke/execute.js';
export type { Result, Failure, TlsReport, ResponseReport } from './invoke/result.js';
export { FAILURE_CATEGORIES, EXIT, type FailureCategory } from './failures/categories.js';
export type { NodeDefinition, ProfileDocument, Invocation } from './definitions/types.js';
export { SvcnodeError, InvalidInputError, BundleError, UnavailableError, ERROR_CODES, type ErrorCode } from './errors.js';
