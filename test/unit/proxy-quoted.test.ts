import { describe, expect, it } from 'vitest';
import { describeRefusal, quoted, type ProxyAnswer } from '../../src/tls/proxy-refusal.js';
import { assertNoSecrets } from '../helpers/secrets.js';

const USER = 'proxyuser';
const PASSWORD = 'Pr0xy\tPa55-w0rd-2024';
/** What proxy-error.ts hands describeRefusal for proxy.url http://proxyuser:Pr0xy%09Pa55-w0rd-2024@proxy:3128. */
const SECRETS = [Buffer.from(`${USER}:${PASSWORD}`).toString('base64'), `${USER}:${PASSWORD}`, PASSWORD, encodeURIComponent(PASSWORD)];
const answer = (o: Partial<ProxyAnswer>): ProxyAnswer => ({ status: 403, statusText: 'Forbidden', challenges: [], squidError: undefined, credentialsSent: true, target: 'api.bank.example:443', ...o });
const noPiece = (text: string): void => assertNoSecrets(text, [PASSWORD, PASSWORD.replace('\t', ' '), PASSWORD.slice(0, 8), PASSWORD.slice(6, 14), PASSWORD.slice(-8)], 'quoted');

describe('proxy-provided text quoting the proxy password', () => {
  it('a password with a control character is masked before controls become spaces', () => {
    // Before: the tab became a space first, the password no longer matched, and it was quoted whole.
    const r = describeRefusal(answer({ statusText: `Denied ${USER}:${PASSWORD}`, squidError: `ERR_ACCESS_DENIED ${PASSWORD}` }), 'http://proxy:3128', SECRETS);
    noPiece(JSON.stringify(r));
    expect(r.message).toContain('HTTP 403 Denied ***; X-Squid-Error: ERR_ACCESS_DENIED ***');
  });

  it('a password a proxy echoes with its control character as a space is masked too', () => {
    noPiece(quoted(`Denied ${PASSWORD.replace('\t', ' ')}`, SECRETS));
  });

  it('most of the password (all but its last 4 characters) is masked: any run of 8 of its characters', () => {
    // Before: "upstream for user proxyuser:Pr0xy Pa55-w0rd-" (all but 4 characters of the password).
    const echoed = quoted(`upstream for user ${USER}:${PASSWORD.slice(0, -4)}`, SECRETS);
    noPiece(echoed);
    expect(echoed).toBe('upstream for user ***');
    noPiece(quoted(`bad password ${PASSWORD.slice(6, 14)} given`, SECRETS));
    // Shorter runs, and text that shares nothing with the credentials, are quoted as they are.
    expect(quoted('ERR_ACCESS_DENIED 0 Pa55', SECRETS)).toBe('ERR_ACCESS_DENIED 0 Pa55');
  });
});
