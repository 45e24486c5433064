import { describe, expect, it } from 'vitest';
import { headerSecrets, scrubSecrets } from '../../src/invoke/scrub.js';

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

  it('with cutShort, drops any run of 16 characters of it or more, wherever it starts, however far it runs', () => {
    for (const [from, to] of [[0, 16], [0, 30], [0, SECRET.length - 1], [0, SECRET.length], [21, 38], [30, SECRET.length], [5, 40]]) {
      expect(scrubSecrets(`said: ${SECRET.slice(from, to)}...`, [SECRET], { cutShort: true }), `${from}-${to}`).toBe('said: [redacted]...');
    }
    expect(scrubSecrets(`said: ${SECRET.slice(0, 15)}`, [SECRET], { cutShort: true })).toBe(`said: ${SECRET.slice(0, 15)}`);
    expect(scrubSecrets(`said: ${SECRET.slice(30, 45)}`, [SECRET], { cutShort: true })).toBe(`said: ${SECRET.slice(30, 45)}`);
    expect(scrubSecrets(`${SECRET} and ${SECRET.slice(0, 20)}, ${SECRET.slice(-17)}`, [SECRET], { cutShort: true })).toBe('[redacted] and [redacted], [redacted]');
  });

  it('with cutShort, a short secret loses any run of half its length (at least 8 characters)', () => {
    const secret = 's3cr3t-P@ss/word-42';
    expect(scrubSecrets(`bad secret ${secret.slice(0, 12)} / ${secret.slice(9)} / ${secret.slice(0, 9)}`, [secret], { cutShort: true })).toBe(`bad secret [redacted] / [redacted] / ${secret.slice(0, 9)}`);
    expect(scrubSecrets('bad secret s3cret-12 / s3cret-1 / s3cret-', ['s3cret-12'], { cutShort: true })).toBe('bad secret [redacted] / [redacted] / s3cret-');
  });
});

describe('headerSecrets', () => {
  it('Basic: the header value, the base64, the decoded user:password and the password', () => {
    const b64 = Buffer.from('bot-user:pa:ss word').toString('base64');
    expect(headerSecrets('authorization', `Basic ${b64}`)).toEqual([`Basic ${b64}`, b64, 'bot-user:pa:ss word', 'pa:ss word']);
  });

  it('Bearer and other schemes: the value and the credentials; Cookie: the value and each cookie value; others: the value', () => {
    expect(headerSecrets('proxy-authorization', 'Bearer abc.def.ghi ')).toEqual(['Bearer abc.def.ghi ', 'abc.def.ghi']);
    expect(headerSecrets('cookie', 'theme=dark; JSESSIONID=ABCDEF0123456789')).toEqual(['theme=dark; JSESSIONID=ABCDEF0123456789', 'dark', 'ABCDEF0123456789']);
    expect(headerSecrets('x-api-key', 'k-123456789')).toEqual(['k-123456789']);
    // Not base64 of a user:password: nothing decoded is added.
    expect(headerSecrets('authorization', 'Basic %%%notbase64')).toEqual(['Basic %%%notbase64', '%%%notbase64']);
  });
});
