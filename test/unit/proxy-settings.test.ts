import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mintCa } from '../../src/pki/mint.js';
import { bypassesProxy, cidrBlock, PROXY_CA_RECHECK_MS, proxyTlsFor } from '../../src/tls/proxy-settings.js';

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

  it.each([
    ['https://10.1.2.3/', ['10.0.0.0/8'], true],
    ['https://10.1.2.3/', ['10.1.2.3/32'], true],
    ['https://11.1.2.3/', ['10.0.0.0/8'], false],
    ['https://192.168.7.9:8443/', ['192.168.0.0/16'], true],
    ['https://[fd00::1]/', ['fd00::/8'], true],
    ['https://[fd00::1]/', ['[fd00::]/8'], true],
    ['https://[fe80::1]/', ['fd00::/8'], false],
    ['https://10.1.2.3/', ['::/0'], false],
    // Names are not resolved for a block (as curl): only IP-address URLs match one.
    ['https://api.bank.example/', ['0.0.0.0/0'], false],
  ] as const)('CIDR: %s with %j → %s', (href, list, expected) => {
    expect(bypassesProxy(new URL(href), list, undefined)).toBe(expected);
    expect(bypassesProxy(new URL(href), undefined, list.join(','))).toBe(expected);
  });

  it('compares names without a trailing (root) dot, in the URL or the entry', () => {
    expect(bypassesProxy(new URL('https://api.bank.example./'), ['api.bank.example'], undefined)).toBe(true);
    expect(bypassesProxy(new URL('https://api.bank.example/'), ['.bank.example.'], undefined)).toBe(true);
    expect(bypassesProxy(new URL('https://api.bank.example./'), undefined, 'bank.example')).toBe(true);
  });

  it('reads cidrBlock: address, prefix and family; undefined for what is not one', () => {
    expect(cidrBlock('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(cidrBlock('[fd00::]/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'example.com/8', 'http://proxy/', '10.0.0/8x', '10.0.0.0']) expect(cidrBlock(bad), bad).toBeUndefined();
  });
});

describe('proxyTlsFor (proxy.tls.ca)', () => {
  it('is rebuilt when its file changes, and keeps the last good trust while the file is broken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-proxy-ca-'));
    try {
      const [first, second] = await Promise.all([mintCa({ subject: 'CN=Proxy Root A' }), mintCa({ subject: 'CN=Proxy Root B' })]);
      const file = join(dir, 'proxy-ca.pem');
      writeFileSync(file, first.certPem);
      const a = proxyTlsFor([file]);
      expect(proxyTlsFor([file])).toBe(a);
      writeFileSync(file, 'not a certificate, mid-rotation');
      await sleep(PROXY_CA_RECHECK_MS + 50);
      expect(proxyTlsFor([file])).toBe(a);
      writeFileSync(file, second.certPem);
      await sleep(PROXY_CA_RECHECK_MS + 50);
      const b = proxyTlsFor([file]);
      expect(b).not.toBe(a);
      expect(b.id).not.toBe(a.id);
      // A file that never held a certificate is refused by name (OpenSSL alone would skip its text).
      const empty = join(dir, 'empty-ca.pem');
      writeFileSync(empty, 'see the wiki for the proxy CA\n');
      expect(() => proxyTlsFor([empty])).toThrow(expect.objectContaining({ code: 'SVCNODE_INVALID_BUNDLE', message: `proxy.tls.ca: ${empty} holds no PEM certificate` }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
