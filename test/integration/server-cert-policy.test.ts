/**
 * Server certificates that chain to a trusted root but break certificate policy, against real TLS
 * servers, with certificates minted in the test (openssl for what the minting helper cannot
 * express: name constraints, SHA-1 signatures): each is a server_cert_* category with a code and a
 * hint of its own, never connect_failed, never retried.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import type { MtlsServer } from '../helpers/servers.js';

const DAY = 86_400_000;
const bank = useBankFixture();

function node(port: number): NodeDefinition {
  return { id: 'policy', request: { method: 'GET', url: `https://localhost:${port}/` }, tls: { profile: 'bank' }, retry: { limit: 2, backoffMs: 5, maxBackoffMs: 5 }, timeouts: { connectMs: 3_000, handshakeMs: 3_000, responseMs: 3_000 } };
}

function serve(key: string, cert: string, ciphers?: string): Promise<MtlsServer> {
  return bank.serve({ key, cert, ...(ciphers ? { ciphers } : {}) });
}

/** Sign a fresh RSA leaf for localhost with openssl, by the given CA, with extra x509v3 lines and digest. */
function opensslLeaf(name: string, caCert: string, caKey: string, o: { digest?: string; ext?: string } = {}): { cert: string; key: string } {
  const dir = bank.pki.dir;
  const file = (suffix: string): string => join(dir, `${name}.${suffix}`);
  const caCertFile = bank.pki.write(`${name}-ca.pem`, caCert);
  const caKeyFile = bank.pki.write(`${name}-ca.key`, caKey);
  bank.pki.write(`${name}.ext`, `subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n${o.ext ?? ''}`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('key'), '-subj', '/CN=localhost/O=policy', '-out', file('csr')], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', file('csr'), '-CA', caCertFile, '-CAkey', caKeyFile, '-CAcreateserial', '-days', '30', `-${o.digest ?? 'sha256'}`, '-extfile', file('ext'), '-out', file('pem')], { stdio: 'ignore' });
  return { cert: readFileSync(file('pem'), 'utf8'), key: readFileSync(file('key'), 'utf8') };
}

/** An intermediate CA signed by the test root with openssl, with extra x509v3 lines. */
function opensslCa(name: string, ext: string): { cert: string; key: string } {
  const file = (suffix: string): string => join(bank.pki.dir, `${name}.${suffix}`);
  const rootCert = bank.pki.write(`${name}-root.pem`, bank.pki.root.certPem);
  const rootKey = bank.pki.write(`${name}-root.key`, bank.pki.root.keyPem);
  bank.pki.write(`${name}.ext`, `basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n${ext}\n`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('key'), '-subj', `/CN=${name}/O=policy`, '-out', file('csr')], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', file('csr'), '-CA', rootCert, '-CAkey', rootKey, '-CAcreateserial', '-days', '30', '-sha256', '-extfile', file('ext'), '-out', file('pem')], { stdio: 'ignore' });
  return { cert: readFileSync(file('pem'), 'utf8'), key: readFileSync(file('key'), 'utf8') };
}

describe('server certificates that break policy', () => {
  it('a name-constraint violation: NAME_CONSTRAINTS_VIOLATION, not connect_failed/UNSPECIFIED, not retried', async () => {
    const ca = opensslCa('Constrained CA', 'nameConstraints=critical,permitted;DNS:.allowed.example');
    const leaf = opensslLeaf('constrained', ca.cert, ca.key);
    const s = await serve(leaf.key, leaf.cert + ca.cert);
    const r = await invokeWithRetries(node(s.port), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ category: 'server_cert_untrusted', code: 'NAME_CONSTRAINTS_VIOLATION', phase: 'tls' });
    expect(r.failure?.hint).toContain('name constraints');
    expect(r.attempts).toBe(1);
    expect(s.tcpConnections).toBe(1);
  });

  it('a SHA-1 signature: CA_MD_TOO_WEAK with a hint to reissue with SHA-256', async () => {
    const leaf = opensslLeaf('sha1', bank.pki.intermediate.certPem, bank.pki.intermediate.keyPem, { digest: 'sha1' });
    // The server needs security level 0 to load it at all; the client keeps its default level.
    const s = await serve(leaf.key, leaf.cert + bank.pki.intermediate.certPem, 'DEFAULT@SECLEVEL=0');
    const r = await invokeWithRetries(node(s.port), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ category: 'server_cert_untrusted', code: 'CA_MD_TOO_WEAK' });
    expect(r.failure?.hint).toContain('SHA-256');
    expect(r.attempts).toBe(1);
  });

  it('a clientAuth-only certificate on the server: INVALID_PURPOSE, with a hint about the purpose, not about trust.ca', async () => {
    const leaf = await mintLeaf({ subject: 'CN=localhost,O=wrong purpose', issuer: bank.pki.intermediate, usage: 'client', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const s = await serve(leaf.keyPem, leaf.certPem + bank.pki.intermediate.certPem);
    const r = await invokeWithRetries(node(s.port), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'server_cert_untrusted', code: 'INVALID_PURPOSE' });
    expect(r.failure?.hint).toContain('serverAuth');
    expect(r.failure?.hint).not.toContain('trust.ca');
  });

  it('an expired intermediate is named by its own subject and dates, not the leaf', async () => {
    const now = Date.now();
    const old = await mintCa({ subject: 'CN=Expired Intermediate,O=svcnode tests', issuer: bank.pki.root, pathLength: 0, notBefore: new Date(now - 400 * DAY), notAfter: new Date(now - 10 * DAY) });
    const leaf = await mintLeaf({ subject: 'CN=localhost,O=valid leaf', issuer: old, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const s = await serve(leaf.keyPem, leaf.certPem + old.certPem);
    const r = await invokeWithRetries(node(s.port), {}, bank.deps);
    expect(r.failure?.category).toBe('server_cert_expired');
    expect(r.failure?.message).toContain('CN=Expired Intermediate, O=svcnode tests');
    expect(r.failure?.message).toContain(new Date(old.cert.validTo).toISOString());
    expect(r.failure?.message).not.toContain('valid leaf');
    expect(r.attempts).toBe(1);
  });
});
