/** The demo's verdict lines: a failure is "as expected" only when its category is the one its step provokes. */
import { describe, expect, it } from 'vitest';
import { closingLine, unexpectedLine, type Expected } from '../../examples/demo-expectations.js';
import type { FailureCategory } from '../../src/failures/categories.js';

const ok = { failure: null };
const failed = (category: FailureCategory) => ({ failure: { category } });
const EXPECTED: Expected[] = [null, null, 'server_cert_expired', 'client_cert_rejected', 'connect_failed'];

describe('demo expectations', () => {
  it('every step as expected: the closing line the README quick start describes, no UNEXPECTED line', () => {
    const results = [ok, ok, failed('server_cert_expired'), failed('client_cert_rejected'), failed('connect_failed')];
    expect(results.map((r, i) => unexpectedLine(r, EXPECTED[i] ?? null))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(closingLine(results, EXPECTED)).toEqual({ asExpected: true, line: 'demo finished: 2 ok, 3 failed as expected (server_cert_expired, client_cert_rejected, connect_failed)' });
  });

  it('failures of other categories (jobs taken by a foreign fleet: invalid_input) are UNEXPECTED, never "as expected"', () => {
    // What the probe saw with REDIS_URL on a live Redis: 0 ok, 5 failed, and "failed as expected".
    const results = [failed('invalid_input'), failed('invalid_input'), failed('invalid_input'), failed('client_cert_rejected'), failed('invalid_input')];
    expect(unexpectedLine(results[0] ?? ok, null)).toBe('UNEXPECTED  expected OK, got invalid_input');
    expect(unexpectedLine(results[2] ?? ok, 'server_cert_expired')).toBe('UNEXPECTED  expected server_cert_expired, got invalid_input');
    expect(unexpectedLine(results[3] ?? ok, 'client_cert_rejected')).toBeUndefined();
    const closing = closingLine(results, EXPECTED);
    expect(closing.asExpected).toBe(false);
    expect(closing.line).toMatch(/^demo finished: UNEXPECTED: 0 ok, 5 failed \(invalid_input, .*\); expected 2 ok, 3 failed \(server_cert_expired, client_cert_rejected, connect_failed\)$/);
    expect(closing.line).not.toContain('as expected');
  });

  it('an OK where a failure was expected is UNEXPECTED too', () => {
    expect(unexpectedLine(ok, 'connect_failed')).toBe('UNEXPECTED  expected connect_failed, got OK');
    expect(closingLine([ok], ['connect_failed']).asExpected).toBe(false);
  });
});
