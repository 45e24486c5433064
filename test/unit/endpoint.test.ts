import { describe, expect, it } from 'vitest';
import { authorityHost, bareHostname, proxyLocation, tlsEndpoint } from '../../src/tls/endpoint.js';

describe('bareHostname', () => {
  it.each([
    ['[::1]', '::1'],
    ['[2001:db8::7]', '2001:db8::7'],
    ['bank.example', 'bank.example'],
    ['127.0.0.1', '127.0.0.1'],
    ['', ''],
  ])('%s → %s', (hostname, bare) => {
    expect(bareHostname(hostname)).toBe(bare);
  });
});

describe('tlsEndpoint', () => {
  it('takes the host name as SNI and 443 when the URL has no port', () => {
    expect(tlsEndpoint(new URL('https://api.bank.example/accounts'))).toEqual({ host: 'api.bank.example', port: 443, servername: 'api.bank.example' });
  });

  it('sends no SNI to an IP address (RFC 6066), IPv6 without brackets', () => {
    expect(tlsEndpoint(new URL('https://[::1]:8443/x'))).toEqual({ host: '::1', port: 8443, servername: undefined });
    expect(tlsEndpoint(new URL('https://10.1.2.3:9443/'))).toEqual({ host: '10.1.2.3', port: 9443, servername: undefined });
  });

  it("the node's tls.servername wins, for IP addresses too", () => {
    expect(tlsEndpoint(new URL('https://10.1.2.3/'), 'gw.bank.example')).toEqual({ host: '10.1.2.3', port: 443, servername: 'gw.bank.example' });
    expect(tlsEndpoint(new URL('https://lb.internal:443/'), 'api.bank.example').servername).toBe('api.bank.example');
  });
});

describe('CONNECT authority and proxy location', () => {
  it('brackets an IPv6 literal in a CONNECT authority, nothing else', () => {
    expect(authorityHost('::1')).toBe('[::1]');
    expect(authorityHost('10.0.0.1')).toBe('10.0.0.1');
    expect(authorityHost('api.bank.example')).toBe('api.bank.example');
  });

  it('gives the CONNECT request an IPv6 proxy host without brackets, credentials as written', () => {
    expect(proxyLocation('http://u:p%40ss@[::1]:3128')).toEqual({ protocol: 'http:', hostname: '::1', port: '3128', username: 'u', password: 'p%40ss' });
    expect(proxyLocation('https://proxy.bank.example')).toMatchObject({ protocol: 'https:', hostname: 'proxy.bank.example', port: '' });
  });
});
