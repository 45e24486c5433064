import { describe, expect, it } from 'vitest';
import { bypassesProxy } from '../../src/tls/proxy-settings.js';

describe('bypassesProxy (NO_PROXY-style lists)', () => {
  const url = new URL('https://api.bank.example:8443/x');

  it.each([
    [['api.bank.example'], undefined, true],
    [['bank.example'], undefined, true],
    [['.bank.example'], undefined, true],
    [['*.bank.example'], undefined, true],
    [['api.bank.example:8443'], undefined, true],
    [['api.bank.example:443'], undefined, false],
    [['ank.example'], undefined, false],
    [['other.example'], undefined, false],
    [[], 'other.example, bank.example', true],
    [undefined, '*', true],
    [undefined, '', false],
    [undefined, undefined, false],
  ] as const)('node %j, env %j → %s', (nodeList, env, expected) => {
    expect(bypassesProxy(url, nodeList, env)).toBe(expected);
  });

  it('compares case-insensitively and without IPv6 brackets', () => {
    expect(bypassesProxy(new URL('https://API.Bank.Example/'), ['api.bank.example'], undefined)).toBe(true);
    expect(bypassesProxy(new URL('https://[::1]:9443/'), ['::1'], undefined)).toBe(true);
  });
});
