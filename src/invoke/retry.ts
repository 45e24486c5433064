import type { HttpMethod, NodeDefinition } from '../definitions/types.js';
import { DEFAULTS } from './defaults.js';
import type { Result } from './result.js';

const IDEMPOTENT = new Set<HttpMethod>(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/**
 * The retry policy shared by dry-run and worker: the delay before the next attempt, or undefined
 * when the Result is final. Only transient failures are retried (connect failures, timeouts, 5xx
 * and 429); a request that may have reached the backend is retried only for idempotent methods
 * unless the node sets retry.nonIdempotent.
 */
export function retryDelay(result: Result, node: NodeDefinition, attemptsMade: number): number | undefined {
  const failure = result.failure;
  if (!failure) return undefined;
  const policy = { ...DEFAULTS.retry, ...node.retry };
  if (attemptsMade > policy.limit) return undefined;
  const status = result.response?.status ?? 0;
  const transient =
    failure.category === 'connect_failed' ||
    failure.category === 'timeout' ||
    (failure.category === 'http_status' && (status >= 500 || status === 429)) ||
    failure.code === 'SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE';
  if (!transient) return undefined;
  const mayHaveReachedBackend = failure.phase === 'http';
  if (mayHaveReachedBackend && !IDEMPOTENT.has(node.request.method) && !policy.nonIdempotent) return undefined;
  return Math.min(policy.backoffMs * 2 ** (attemptsMade - 1), policy.maxBackoffMs);
}
