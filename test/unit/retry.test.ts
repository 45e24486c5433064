import { describe, expect, it } from 'vitest';
import type { HttpMethod, NodeDefinition } from '../../src/definitions/types.js';
import { FAILURE_CATEGORIES, type FailureCategory, type FailurePhase } from '../../src/failures/categories.js';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import type { Result } from '../../src/invoke/result.js';
import { classifyHttpStatus } from '../../src/failures/classify.js';
import { retryAfterNote, retryDelay, settledResult } from '../../src/invoke/retry.js';

function node(method: HttpMethod, retry?: NodeDefinition['retry']): NodeDefinition {
  return { id: 'retry', request: { method, url: 'https://api.example/' }, tls: { profile: 'bank' }, ...(retry ? { retry } : {}) };
}

function result(category: FailureCategory | null, o: { phase?: FailurePhase; status?: number; code?: string; headers?: Record<string, string> } = {}): Result {
  return {
    ok: category === null,
    nodeId: 'retry',
    request: { method: 'GET', url: 'https://api.example/' },
    tls: null,
    response: o.status === undefined ? null : { status: o.status, headers: o.headers ?? {}, body: null },
    failure: category === null ? null : { category, phase: o.phase ?? FAILURE_CATEGORIES[category].phase, code: o.code ?? 'X', message: 'm', hint: 'h' },
    timings: { connectMs: 0, handshakeMs: 0, totalMs: 0 },
    attempts: 1,
  };
}

const retried = (r: Result, n: NodeDefinition, attempt = 1): boolean => retryDelay(r, n, attempt) !== undefined;

describe('POST: not retried once the request may have reached the backend', () => {
  it.each([
    ['5xx', result('http_status', { status: 503 })],
    ['429', result('http_status', { status: 429 })],
    ['response timeout (request sent)', result('timeout', { phase: 'request' })],
    ['connection reset after the request was sent', result('connect_failed', { phase: 'request' })],
  ])('%s', (_label, r) => {
    expect(retried(r, node('POST'))).toBe(false);
    expect(retried(r, node('PATCH'))).toBe(false);
  });

  it('unless the node opts in with retry.nonIdempotent', () => {
    expect(retried(result('http_status', { status: 503 }), node('POST', { nonIdempotent: true }))).toBe(true);
    expect(retried(result('timeout', { phase: 'request' }), node('PATCH', { nonIdempotent: true }))).toBe(true);
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
    expect(retried(result('timeout', { phase: 'request' }), node(method))).toBe(true);
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

  it('the backoff cap doubles per attempt and is capped by maxBackoffMs; the delay is drawn below it (full jitter)', () => {
    const n = node('GET', { limit: 10, backoffMs: 100, maxBackoffMs: 500 });
    const almostOne = (): number => 0.999_999;
    expect([1, 2, 3, 4, 5].map((a) => retryDelay(transient, n, a, almostOne))).toEqual([99, 199, 399, 499, 499]);
    expect([1, 2, 3, 4, 5].map((a) => retryDelay(transient, n, a, () => 0.5))).toEqual([50, 100, 200, 250, 250]);
    expect(retryDelay(transient, n, 3, () => 0)).toBe(0);
  });

  it('jobs that failed together spread their retries (Math.random by default)', () => {
    const n = node('GET', { limit: 10, backoffMs: 1_000, maxBackoffMs: 1_000 });
    const delays = new Set(Array.from({ length: 50 }, () => retryDelay(transient, n, 1)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(1_000);
    }
  });

  it('defaults apply to fields the node leaves out', () => {
    expect(retryDelay(transient, node('GET', { limit: 1 }), 1, () => 0.999_999)).toBe(DEFAULTS.retry.backoffMs - 1);
  });
});

describe('Retry-After', () => {
  const n = node('GET', { limit: 3, backoffMs: 100, maxBackoffMs: 5_000 });
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('delay-seconds within maxBackoffMs are honoured; a longer wait ends the retries instead of a retry sooner than asked', () => {
    expect(retryDelay(result('http_status', { status: 503, headers: { 'retry-after': '2' } }), n, 1, () => 0, now)).toBe(2_000);
    expect(retryDelay(result('http_status', { status: 429, headers: { 'retry-after': '5' } }), n, 1, () => 0, now)).toBe(5_000);
    expect(retryDelay(result('http_status', { status: 429, headers: { 'retry-after': '120' } }), n, 1, () => 0, now)).toBeUndefined();
  });

  it('an HTTP date is honoured relative to now; one in the past means at once', () => {
    expect(retryDelay(result('http_status', { status: 503, headers: { 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' } }), n, 1, () => 0, now)).toBe(3_000);
    expect(retryDelay(result('http_status', { status: 503, headers: { 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' } }), n, 1, () => 0, now)).toBe(0);
  });

  it('an unreadable value falls back to the jittered backoff', () => {
    expect(retryDelay(result('http_status', { status: 503, headers: { 'retry-after': 'soon' } }), n, 1, () => 0.5, now)).toBe(50);
  });
});

describe('the wording of a 429 or 5xx', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const statusFailure = (status: number, headers: Record<string, string> = {}): Result => {
    const r = result('http_status', { status, code: `HTTP_${status}`, headers });
    return { ...r, failure: { ...(r.failure as NonNullable<Result['failure']>), message: `api.example answered HTTP ${status}, which the node does not accept` } };
  };
  // The message the classifier writes for the response, with the note the retry policy reads from it.
  const quoted = (r: Result): string | undefined => {
    const response = r.response as NonNullable<Result['response']>;
    return classifyHttpStatus(response.status, '', { host: 'api.example', profileName: 'bank', clientSubject: undefined, probe: undefined, proxy: false }, retryAfterNote(response, now)).message;
  };

  it('quotes a readable Retry-After of a 429 or 5xx only', () => {
    expect(quoted(statusFailure(429, { 'retry-after': '30' }))).toBe('api.example answered HTTP 429 (Retry-After: 30 s), which the node does not accept');
    expect(quoted(statusFailure(503, { 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }))).toContain('HTTP 503 (Retry-After: 3 s)');
    expect(quoted(statusFailure(503, { 'retry-after': 'soon' }))).not.toContain('Retry-After');
    expect(quoted(statusFailure(404, { 'retry-after': '30' }))).not.toContain('Retry-After');
    expect(retryAfterNote({ status: 503, headers: {}, body: null }, now)).toBe('');
  });

  it('a Result the policy would still retry keeps its hint; one it gives up on says how many attempts were made', () => {
    const n = node('GET', { limit: 2 });
    expect(settledResult({ ...statusFailure(503), attempts: 2 }, n).failure?.hint).toBe('h');
    expect(settledResult({ ...statusFailure(503), attempts: 3 }, n).failure?.hint).toMatch(/^the backend failed \(HTTP 503\) on the last of 3 attempts \(retry\.limit 2\)/);
    expect(settledResult({ ...statusFailure(429), attempts: 1 }, node('GET', { limit: 0 })).failure?.hint).toMatch(/^the backend rate-limited this client \(HTTP 429\) on the only attempt \(retry\.limit 0\)/);
    expect(settledResult(statusFailure(503), node('PATCH')).failure?.hint).toContain('a PATCH that reached the backend is retried only with retry.nonIdempotent: true');
    expect(settledResult({ ...statusFailure(404), attempts: 3 }, n).failure?.hint).toBe('h');
    // A wait longer than maxBackoffMs ended the retries: the hint says so.
    expect(settledResult({ ...statusFailure(503, { 'retry-after': '3600' }), attempts: 1 }, n).failure?.hint).toMatch(/^the backend failed \(HTTP 503\) on the only attempt, and asked to be called again later than retry\.maxBackoffMs \(10000 ms\) allows/);
    const ok = result(null, { status: 200 });
    expect(settledResult(ok, n)).toBe(ok);
  });
});

describe('permanent codes in retried categories', () => {
  it.each(['SVCNODE_TOO_MANY_REDIRECTS', 'SVCNODE_BAD_RESPONSE', 'SVCNODE_DECODE_FAILED', 'SVCNODE_UNSUPPORTED_ENCODING', 'SVCNODE_UNEXPECTED_ERROR', 'SVCNODE_PROXY_TLS', 'SVCNODE_PROXY_BAD_RESPONSE', 'PROXY_407', 'PROXY_403'])('%s', (code) => {
    expect(retried(result('connect_failed', { code, phase: 'proxy' }), node('GET', { limit: 5 }))).toBe(false);
    expect(retried(result('http_status', { code, status: 0 }), node('GET', { limit: 5 }))).toBe(false);
  });

  it('a proxy that cannot reach the backend for now (502/503/504), or is unreachable or slow, is retried', () => {
    for (const code of ['PROXY_502', 'PROXY_503', 'PROXY_504', 'SVCNODE_PROXY_UNREACHABLE']) expect(retried(result('connect_failed', { code, phase: 'proxy' }), node('GET'))).toBe(true);
    expect(retried(result('timeout', { code: 'SVCNODE_PROXY_TIMEOUT', phase: 'proxy' }), node('POST'))).toBe(true);
  });
});
