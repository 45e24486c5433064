/**
 * CRL revocation checks against a PKI run by the openssl CLI (`openssl ca` with index files,
 * `-revoke`, `-gencrl`) and `openssl s_server` backends: revoked leaf, revoked intermediate,
 * unrevoked, stale CRL in hard and soft mode, a missing CRL level, and a CRL no trusted CA signed.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { invoke } from '../../src/invoke/execute.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { AgentPool } from '../../src/tls/agents.js';
import { revocationEvents, type RevocationCheck } from '../../src/tls/revocation.js';
import { profileDeps } from '../helpers/deps.js';
import { createOpensslPki, type OpensslCa, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

const DAY = 86_400_000;
const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000 };

let dir: string;
let pki: OpensslPki;
let good: OpensslIssued;
let revokedLeaf: OpensslIssued;
let underRevokedCa: OpensslIssued;
let issuing2: OpensslCa;
const servers: Record<'good' | 'revokedLeaf' | 'revokedCa', OpensslServer | undefined> = { good: undefined, revokedLeaf: undefined, revokedCa: undefined };
const crl = { issuing: '', issuingDer: '', issuing2: '', root: '', stale: '' };
let agents: AgentPool;

function node(server: OpensslServer): NodeDefinition {
  return { id: 'crl', request: { method: 'GET', url: `https://localhost:${server.port}/` }, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry: { limit: 0 } };
}

async function call(server: OpensslServer | undefined, trust: ProfileDocument['trust']): Promise<Awaited<ReturnType<typeof invoke>>> {
  const file = join(dir, 'profiles', 'bank.json');
  writeFileSync(file, JSON.stringify({ trust }));
  const profile = await loadProfile(file);
  return invoke(node(server as OpensslServer), {}, profileDeps(new Map([['bank', profile]]), agents));
}

const ca = (): string[] => [pki.root.cert, pki.intermediate.cert];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-crl-'));
  mkdirSync(join(dir, 'profiles'));
  pki = createOpensslPki(dir);
  issuing2 = pki.addIntermediate('issuing2', 'Bank Issuing CA 2');
  good = pki.issueServer('good');
  revokedLeaf = pki.issueServer('revoked-leaf');
  underRevokedCa = pki.issueServer('under-revoked-ca', { ca: issuing2 });
  pki.revoke(pki.intermediate, revokedLeaf.cert);
  pki.revoke(pki.root, issuing2.cert);
  crl.issuing = pki.gencrl(pki.intermediate, join(dir, 'issuing.crl'));
  crl.issuingDer = pki.gencrl(pki.intermediate, join(dir, 'issuing.der.crl'), { der: true });
  crl.issuing2 = pki.gencrl(issuing2, join(dir, 'issuing2.crl'));
  crl.root = pki.gencrl(pki.root, join(dir, 'root.crl'), { der: true });
  crl.stale = pki.gencrl(pki.intermediate, join(dir, 'issuing-stale.crl'), { lastUpdate: new Date(Date.now() - 10 * DAY), nextUpdate: new Date(Date.now() - DAY) });
  const serve = (leaf: OpensslIssued, chain: string): Promise<OpensslServer> => startOpensslServer({ certFile: leaf.cert, keyFile: leaf.key, chainFile: chain, verify: 'none', tls: 'both' });
  [servers.good, servers.revokedLeaf, servers.revokedCa] = await Promise.all([serve(good, pki.intermediate.cert), serve(revokedLeaf, pki.intermediate.cert), serve(underRevokedCa, issuing2.cert)]);
}, 30_000);

beforeEach(() => {
  agents = new AgentPool();
});

afterEach(() => {
  agents.destroy();
});

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s?.close() ?? Promise.resolve()));
  await rm(dir, { recursive: true, force: true });
});

describe('hard mode (OpenSSL checks every chain level)', () => {
  it('an unrevoked server passes with a PEM and a DER CRL', async () => {
    const r = await call(servers.good, { ca: ca(), crl: [crl.issuingDer, crl.root] });
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.status).toBe(200);
  });

  it('a revoked leaf fails as server_cert_revoked, naming certificate, serial, date and CRL', async () => {
    const r = await call(servers.revokedLeaf, { ca: ca(), crl: [crl.issuing, crl.root] });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.phase).toBe('tls');
    expect(r.failure?.code).toBe('CERT_REVOKED');
    expect(r.failure?.hint).toContain('CN=localhost');
    expect(r.failure?.hint).toContain(`serial ${revokedLeaf.serial.replace(/^0+/, '')}`);
    expect(r.failure?.hint).toMatch(/revoked on \d{4}-\d{2}-\d{2}T/);
    expect(r.failure?.hint).toContain(crl.issuing);
    // OpenSSL found it (hard mode): the Result carries the verdict as soft mode does (before: no tls.revocation at all).
    expect(r.tls?.revocation).toEqual([{ source: 'crl', result: 'revoked', subject: 'CN=localhost', message: r.failure?.message }]);
  });

  it('a revoked intermediate fails as server_cert_revoked, naming the intermediate and the root CRL', async () => {
    const r = await call(servers.revokedCa, { ca: [...ca(), issuing2.cert], crl: [crl.issuing, crl.issuing2, crl.root] });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.hint).toContain('CN=Bank Issuing CA 2');
    expect(r.failure?.hint).toContain(crl.root);
    expect(r.tls?.revocation).toEqual([{ source: 'crl', result: 'revoked', subject: 'CN=Bank Issuing CA 2', message: r.failure?.message }]);
  });

  it('a stale CRL fails with server_cert_revocation_unknown under server_cert_untrusted', async () => {
    const r = await call(servers.good, { ca: ca(), crl: [crl.stale, crl.root] });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_untrusted');
    expect(r.failure?.code).toBe('server_cert_revocation_unknown');
    expect(r.failure?.hint).toContain(crl.stale);
  });

  it('a missing CRL level fails with server_cert_revocation_unknown; it does not mask a revoked leaf', async () => {
    const r = await call(servers.good, { ca: ca(), crl: [crl.issuing] });
    expect(r.failure?.code, JSON.stringify(r.failure)).toBe('server_cert_revocation_unknown');
    expect(r.failure?.hint).toContain('every CA level');
    // The CA whose CRL is missing is named: the root, which issued the intermediate.
    expect(r.failure?.hint).toContain('has no CRL of "CN=Bank Test Root" (issuer of "CN=Bank Issuing CA")');
    const masked = await call(servers.revokedLeaf, { ca: ca(), crl: [crl.issuing] });
    expect(masked.failure?.category, JSON.stringify(masked.failure)).toBe('server_cert_revoked');
    // The code says revoked, as for every other revoked chain; the message keeps what OpenSSL reported.
    expect(masked.failure?.code).toBe('CERT_REVOKED');
    expect(masked.failure?.message).toContain('OpenSSL also reported UNABLE_TO_GET_CRL');
  });
});

describe('soft mode', () => {
  const seen: RevocationCheck[] = [];
  const listener = (c: RevocationCheck): void => void seen.push(c);
  beforeAll(() => void revocationEvents.on('check', listener));
  afterAll(() => void revocationEvents.off('check', listener));

  it('a stale CRL lets the call through and records an unknown verdict', async () => {
    seen.length = 0;
    const r = await call(servers.good, { ca: ca(), crl: [crl.stale, crl.root], revocation: { mode: 'soft' } });
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(seen.map((c) => [c.profile, c.result])).toEqual([['bank', 'unknown']]);
    expect(seen[0]?.subject).toContain('CN=localhost');
    expect(r.ok).toBe(true);
    expect(r.tls?.revocation).toEqual([{ source: 'crl', result: 'unknown', subject: 'CN=localhost', message: expect.stringMatching(/^no current CRL covers "CN=localhost": the CRL .*issuing-stale\.crl was due for renewal at /) as string }]);
  });

  it('current CRLs record an ok verdict; a revoked leaf still fails', async () => {
    seen.length = 0;
    const ok = await call(servers.good, { ca: ca(), crl: [crl.issuing, crl.root], revocation: { mode: 'soft' } });
    expect(ok.failure, JSON.stringify(ok.failure)).toBeNull();
    expect(seen.map((c) => c.result)).toEqual(['ok']);
    expect(ok.tls?.revocation).toEqual([{ source: 'crl', result: 'ok' }]);
    const r = await call(servers.revokedLeaf, { ca: ca(), crl: [crl.issuing], revocation: { mode: 'soft' } });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.code).toBe('SVCNODE_CERT_REVOKED');
    expect(r.failure?.hint).toContain(`serial ${revokedLeaf.serial.replace(/^0+/, '')}`);
    expect(r.failure?.message).toMatch(/^server certificate chain of localhost:\d+ is revoked: certificate "CN=localhost" \(serial [0-9A-F]+\) was revoked/);
  });

  it('a revoked intermediate is named as the certificate of the chain it is, not as the server certificate', async () => {
    const r = await call(servers.revokedCa, { ca: [...ca(), issuing2.cert], crl: [crl.issuing2, crl.root], revocation: { mode: 'soft' } });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.message).toMatch(/^server certificate chain of localhost:\d+ is revoked: certificate "CN=Bank Issuing CA 2" \(serial [0-9A-F]+\) was revoked/);
  });
});

describe('loading trust.crl', () => {
  it('refuses a CRL that no trust.ca certificate signed (SVCNODE_INVALID_CRL)', async () => {
    const file = join(dir, 'profiles', 'other.json');
    writeFileSync(file, JSON.stringify({ trust: { ca: [pki.root.cert], crl: [crl.issuing] } }));
    await expect(loadProfile(file)).rejects.toMatchObject({ code: 'SVCNODE_INVALID_CRL', hint: expect.stringContaining('add the CA "CN=Bank Issuing CA" to trust.ca') as string });
  });

  it('a CRL of a CA with the same name as a trust.ca certificate but another key: says the CA was re-keyed, not that it is missing', async () => {
    // Another PKI: its root is also "CN=Bank Test Root", with its own key.
    const rekeyed = createOpensslPki(join(dir, 'rekeyed'));
    const file = join(dir, 'profiles', 'rekeyed.json');
    writeFileSync(file, JSON.stringify({ trust: { ca: ca(), crl: [rekeyed.gencrl(rekeyed.root, join(dir, 'rekeyed-root.crl'))] } }));
    const error = await loadProfile(file).then(
      () => ({ code: 'loaded', message: '', hint: '' }),
      (e: unknown) => e as { code: string; message: string; hint: string },
    );
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_CRL' });
    expect(error.message).toContain('trust.ca has a certificate named "CN=Bank Test Root", but this CRL\'s signature does not verify with its key');
    expect(error.hint).toContain('re-keyed');
    expect(error.hint).not.toContain('add the CA');
  });

  it('refuses a file that is not a CRL', async () => {
    const file = join(dir, 'profiles', 'notcrl.json');
    writeFileSync(file, JSON.stringify({ trust: { ca: ca(), crl: [pki.root.cert] } }));
    await expect(loadProfile(file)).rejects.toMatchObject({ code: 'SVCNODE_INVALID_CRL' });
  });
});
