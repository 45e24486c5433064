import { describe, expect, it } from 'vitest';
import { normalTarget, originParts, targetOf } from '../../src/invoke/request-target.js';

/** What the fast path must equal: the WHATWG parser's view of origin + rest. */
function viaParser(origin: string, rest: string): ReturnType<typeof targetOf> {
  return targetOf(new URL(origin + rest));
}

describe('normalTarget', () => {
  const origins = ['https://localhost:8443', 'https://API.Bank.example', 'https://bank.example:443', 'https://[::1]:9443', 'https://127.0.0.1'];
  const rests = ['', '/', '/accounts/42', '/a/b/', '/a/%C3%A9/x', "/a/b!$&()*+,;=:@~_-.x", '/q?x=1&y=a:b@c/d?e', '/a/..b/c.', '/a?x=%zz', '/a/%2e.b'];
  for (const origin of origins) {
    for (const rest of rests) {
      it(`${origin} + ${rest || '(empty)'} equals the parser`, () => {
        const parts = originParts(origin);
        expect(parts).toBeDefined();
        expect(normalTarget(parts as NonNullable<typeof parts>, rest)).toEqual(viaParser(origin, rest));
      });
    }
  }

  it.each(['/a/../b', '/a/./b', '/a/%2E%2e/b', '/a/..', '/a b', '/a/é', '/a?x=\'1\'', '/a?', '/a#frag', '/a\\b', '/a?x=<y>', '/a/{b}', '/a/`b`'])('%s is left to the parser (it would change it)', (rest) => {
    const parts = originParts('https://h.example');
    expect(normalTarget(parts as NonNullable<typeof parts>, rest)).toBeUndefined();
  });

  it.each(['http://h.example', 'https://user:pw@h.example', 'https://h.example/path', 'not a url'])('origin %s is left to the parser', (origin) => {
    expect(originParts(origin)).toBeUndefined();
  });
});
