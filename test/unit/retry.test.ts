import { describe, expect, it } from 'vitest';
import type { HttpMethod, NodeDefinition } from '../../src/definitions/types.js';
import { FAILURE_CATEGORIES, type FailureCategory, type FailurePhase } from '../../src/failures/categories.js';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import type { Result } from '../../src/invoke/result.js';
import { retryDelay } from '../../src/invoke/retry.js';

function node(method: HttpMethod, retry?: NodeDefinition['retry']): NodeDefinition {
  return { id: 'retry', request: { method, url: 'https://api.example/' }, tls: { profile: 'bank' }, ...(retry ? { retry } : {}) };
}

function result(category: FailureCategory | null, o: { phase?: FailurePhase; status?: number } = {}): Result {
  return {
    ok: category === null,
    nodeId: 'retry',
    request: { method: 'GET', url: 'https://api.example/' },
    tls: null,
    response: o.status === undefined ? null : { status: o.status, headers: {}, body: null },
    failure: category === null ? null : { category, phase: o.phase ?? FAILURE_CATEGORIES[category].phase, code: 'X', message: 'm', hint: 'h' },
    timings: { connectMs: 0, handshakeMs: 0, totalMs: 0 },
    attempts: 1,
  };
}

const retried = (r: Result, n: NodeDefinition, attempt = 1): boolean => retryDelay(r, n, attempt) !== undefined;

describe('POST: not retried once the request may have reached the backend', () => {
  it.each([
    ['5xx', result('http_status', { status: 503 })],
    ['429', result('http_status', { status: 429 })],
    ['response timeout (request sent)', result('timeout', { phase: 'http' })],
    ['connection reset after the request was sent', result('connect_failed', { phase: 'http' })],
  ])('%s', (_label, r) => {
    expect(retried(r, node('POST'))).toBe(false);
    expect(retried(r, node('PATCH'))).toBe(false);
  });

  it('unless the node opts in with retry.nonIdempotent', () => {
    expect(retried(result('http_status', { status: 503 }), node('POST', { nonIdempotent: true }))).toBe(true);
    expect(retried(result('timeout', { phase: 'http' }), node('PATCH', { nonIdempotent: true }))).toBe(true);
  });
});

describe('connect failures are retried for every method (nothing was sent)', () => {
  it.each(['GET', 'POST', 'PATCH', 'PUT', 'DELETE'] as const)('%s', (method) => {
    expect(retried(result('connect_failed', { phase: 'connect' }), node(method))).toBe(true);
    expect(retried(result('timeout', { phase: 'connect' }), node(method))).toBe(true);
    expect(retried(result('timeout', { phase: 'tls' }), node(method))).toBe(true);
  });
});

describe('idempotent methods', () => {
  it.each(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'] as const)('%s is retried on 5xx, 429 and timeouts', (method) => {
    expect(retried(result('http_status', { status: 500 }), node(method))).toBe(true);
    expect(retried(result('http_status', { status: 503 }), node(method))).toBe(true);
    expect(retried(result('http_status', { status: 429 }), node(method))).toBe(true);
    expect(retried(result('timeout', { phase: 'http' }), node(method))).toBe(true);
  });

  it.each([400, 401, 403, 404, 409, 422])('GET is not retried on %i', (status) => {
    expect(retried(result('http_status', { status }), node('GET'))).toBe(false);
  });
});

describe('permanent failures are never retried', () => {
  const permanent: FailureCategory[] = [
    'server_cert_untrusted', 'server_cert_expired', 'server_hostname_mismatch', 'server_identity_mismatch',
    'client_cert_rejected', 'client_cert_required', 'client_cert_expired', 'protocol_mismatch', 'invalid_input',
  ];
  it.each(permanent)('%s', (category) => {
    expect(retried(result(category), node('GET', { limit: 5 }))).toBe(false);
    expect(retried(result(category), node('POST', { limit: 5, nonIdempotent: true }))).toBe(false);
  });

  it('success is final', () => {
    expect(retryDelay(result(null, { status: 200 }), node('GET'), 1)).toBeUndefined();
  });
});

describe('limit and backoff', () => {
  const transient = result('connect_failed', { phase: 'connect' });

  it('the default limit allows two retries after the first attempt', () => {
    expect(DEFAULTS.retry.limit).toBe(2);
    expect(retried(transient, node('GET'), 1)).toBe(true);
    expect(retried(transient, node('GET'), 2)).toBe(true);
    expect(retried(transient, node('GET'), 3)).toBe(false);
  });

  it.each([0, 1, 3])('limit %i allows exactly that many retries', (limit) => {
    const n = node('GET', { limit });
    let attempts = 1;
    while (retryDelay(transient, n, attempts) !== undefined) attempts++;
    expect(attempts).toBe(limit + 1);
  });

  it('backoff doubles per attempt and is capped by maxBackoffMs', () => {
    const n = node('GET', { limit: 10, backoffMs: 100, maxBackoffMs: 500 });
    expect([1, 2, 3, 4, 5].map((a) => retryDelay(transient, n, a))).toEqual([100, 200, 400, 500, 500]);
  });

  it('defaults apply to fields the node leaves out', () => {
    expect(retryDelay(transient, node('GET', { limit: 1 }), 1)).toBe(DEFAULTS.retry.backoffMs);
  });
});
