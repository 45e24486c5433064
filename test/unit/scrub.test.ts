import { describe, expect, it } from 'vitest';
import { scrubSecrets } from '../../src/invoke/scrub.js';

const SECRET = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2lnbmF0dXJl';

describe('scrubSecrets', () => {
  it('replaces a secret wherever it occurs, also percent- and form-encoded, and leaves other text alone', () => {
    const secret = 'p@ss word+/=long';
    const value = { a: `x ${secret} y`, b: [encodeURIComponent(secret)], c: `s=${new URLSearchParams({ s: secret }).toString().slice(2)}`, d: 42 };
    expect(scrubSecrets(value, [secret])).toEqual({ a: 'x [redacted] y', b: ['[redacted]'], c: 's=[redacted]', d: 42 });
    const clean = { a: 'nothing here' };
    expect(scrubSecrets(clean, [secret])).toBe(clean);
  });

  it('keeps a piece of a secret by default: a body may hold other tokens that start alike', () => {
    const other = `${SECRET.slice(0, 21)}eyJzdWIiOiJvdGhlciJ9.b3RoZXI`;
    expect(scrubSecrets({ token: other }, [SECRET])).toEqual({ token: other });
  });

  it('with cutShort, drops any piece from the first 16 characters on, however far it runs', () => {
    for (const n of [16, 30, SECRET.length - 1, SECRET.length]) {
      expect(scrubSecrets(`said: ${SECRET.slice(0, n)}...`, [SECRET], { cutShort: true }), String(n)).toBe('said: [redacted]...');
    }
    expect(scrubSecrets(`said: ${SECRET.slice(0, 15)}`, [SECRET], { cutShort: true })).toBe(`said: ${SECRET.slice(0, 15)}`);
    expect(scrubSecrets(`${SECRET} and ${SECRET.slice(0, 20)}`, [SECRET], { cutShort: true })).toBe('[redacted] and [redacted]');
  });

  it('with cutShort, a secret shorter than 16 characters still needs to occur whole', () => {
    expect(scrubSecrets('bad secret s3cret-12 / s3cret-1', ['s3cret-12'], { cutShort: true })).toBe('bad secret [redacted] / s3cret-1');
  });
});
