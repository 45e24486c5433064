import type { Failure } from '../failures/failure.js';
import type { Result } from './result.js';

/** A Result before the call: no TLS, no response, no failure yet. */
export function emptyResult(nodeId: string, request: Result['request'], o: { requestId?: string; attempt?: number } = {}): Result {
  return {
    ok: false,
    nodeId,
    ...(o.requestId === undefined ? {} : { requestId: o.requestId }),
    request,
    tls: null,
    response: null,
    failure: null,
    timings: { connectMs: 0, handshakeMs: 0, totalMs: 0 },
    attempts: o.attempt ?? 1,
  };
}

/** The one builder of a Result that failed before any connection (bad input, unknown node or profile). */
export function failedResult(nodeId: string, failure: Failure, o: { request?: Result['request']; requestId?: string } = {}): Result {
  const result = emptyResult(nodeId, o.request ?? { method: '', url: '' }, o);
  result.failure = failure;
  return result;
}
