import { describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { compileSubjectPattern, subjectMatches } from '../../src/tls/identity.js';
import { subjectPatternMatches } from '../../src/tls/subject-pattern.js';

describe('subject patterns in linear time', () => {
  it('the adversarial pattern against a 200-character DN returns in under 10 ms', () => {
    const dn = `CN=${'a'.repeat(180)}, O=Bank AG, C=DE`;
    expect(dn.length).toBeGreaterThanOrEqual(200);
    // Warm the matcher's code with another pattern, so the bound measures the algorithm, not the JIT.
    for (let i = 0; i < 20; i++) subjectMatches(dn, ['**b**b**b**Y', 'CN=a*, **']);
    // Best of five: a busy machine may preempt one run; a backtracking matcher takes seconds every time.
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect(subjectMatches(dn, ['**a**a**a**a**a**a**a**a**X'])).toBe(false);
      runs.push(performance.now() - started);
    }
    expect(Math.min(...runs)).toBeLessThan(10);
  });

  it('a long run of single stars with a failing tail stays fast too', () => {
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect(subjectPatternMatches(`CN=${'*a'.repeat(40)}X`, `CN=${'a'.repeat(200)}`)).toBe(false);
      runs.push(performance.now() - started);
    }
    expect(Math.min(...runs)).toBeLessThan(10);
  });

  it('a certificate subject with a long run of blanks is split in linear time (a 44 KB subject once blocked ~3 s per handshake)', () => {
    // Blanks not followed by a comma: where a /\s*,\s*/ split retries from every blank of the run.
    const dn = `CN=localhost, name=a${' '.repeat(20_000)}b${'\t'.repeat(2_000)}, O=Bank AG`;
    for (let i = 0; i < 3; i++) subjectMatches('CN=x, O=y', ['CN=x, **']);
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      expect(subjectMatches(dn, ['CN=localhost, **'])).toBe(true);
      expect(subjectMatches(dn, ['CN=other, **', '**, name=a*b, **X'])).toBe(false);
      runs.push(performance.now() - started);
    }
    // The quadratic split took seconds here; the linear one takes a few milliseconds.
    expect(Math.min(...runs)).toBeLessThan(250);
  });

  it('blanks around commas are ignored, blanks inside an RDN are kept', () => {
    expect(subjectMatches(' CN=a b \t,\t O=x ', ['CN=a b,O=x'])).toBe(false);
    expect(subjectMatches('CN=a b \t,\t O=x', ['CN=a b,O=x'])).toBe(true);
    expect(subjectMatches('CN=a b \t,\t O=x', ['O=x, CN=a b'])).toBe(true);
    expect(subjectMatches('CN=a  b, O=x', ['CN=a b, O=x'])).toBe(false);
  });

  it('agrees with the reference regular expression on ordinary patterns and subjects', () => {
    const subjects = ['CN=api.bank.example,OU=Payments,O=Bank AG,C=DE', 'CN=a,b', 'CN=', 'cn=API.Bank.Example', 'O=x,,C=y', 'CN=a*b?c'];
    const patterns = ['CN=api.bank.example,**', 'cn=API.*,**', '**,C=DE', 'CN=?', 'CN=*', 'CN=**', '*', '**', '', 'CN=a?b', 'CN=a,*', '**O=Bank AG**', 'O=x,*,C=y', 'CN=a***b?c', '?N=*,**'];
    for (const s of subjects) {
      for (const p of patterns) {
        expect(subjectPatternMatches(p, s), `${p} vs ${s}`).toBe(compileSubjectPattern(p).test(s));
      }
    }
  });
});
