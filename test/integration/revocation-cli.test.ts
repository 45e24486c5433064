/**
 * Revocation through the built CLI: `certs verify` and `certs status` report CRL freshness and
 * our own revoked client certificate; `dry-run` against a revoked server exits 3. The PKI is run
 * by the openssl CLI (`openssl ca -revoke`, `-gencrl`).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { runCli } from '../helpers/cli.js';
import { createOpensslPki, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let dir: string;
let profiles: string;
let pki: OpensslPki;
let client: OpensslIssued;
let server: OpensslServer;
const crl = { issuing: '', soon: '', staleRoot: '', root: '' };

function profile(name: string, trust: Record<string, unknown>, withClient = true): string {
  const file = join(profiles, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...(withClient ? { client: { certificate: client.cert, key: client.key } } : {}), trust }));
  return file;
}

interface Finding { code: string; severity: string; message: string }

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-crl-cli-'));
  profiles = join(dir, 'profiles');
  mkdirSync(profiles);
  pki = createOpensslPki(dir);
  client = pki.issueClient('svcnode-bot');
  const revokedServer = pki.issueServer('revoked-server');
  pki.revoke(pki.intermediate, client.cert);
  pki.revoke(pki.intermediate, revokedServer.cert);
  crl.issuing = pki.gencrl(pki.intermediate, join(dir, 'issuing.crl'));
  crl.soon = pki.gencrl(pki.intermediate, join(dir, 'issuing-soon.crl'), { nextUpdate: new Date(Date.now() + 2 * HOUR) });
  crl.root = pki.gencrl(pki.root, join(dir, 'root.crl'));
  crl.staleRoot = pki.gencrl(pki.root, join(dir, 'root-stale.crl'), { der: true, lastUpdate: new Date(Date.now() - 9 * DAY), nextUpdate: new Date(Date.now() - 2 * DAY) });
  server = await startOpensslServer({ certFile: revokedServer.cert, keyFile: revokedServer.key, chainFile: pki.intermediate.cert, verify: 'none', tls: 'both' });
}, 30_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('certs verify', () => {
  it('flags a stale CRL (error) and our own revoked client certificate (error): exit 2', async () => {
    const file = profile('stale', { ca: [pki.root.cert, pki.intermediate.cert], crl: [crl.issuing, crl.staleRoot] });
    const r = await runCli(['certs', 'verify', file, '--json']);
    expect(r.code, r.stderr).toBe(2);
    const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;
    expect(findings.find((f) => f.code === 'CRL_STALE')?.severity).toBe('error');
    const revoked = findings.find((f) => f.code === 'CLIENT_CERT_REVOKED');
    expect(revoked?.severity).toBe('error');
    expect(revoked?.message).toContain('CN=svcnode-bot');
    expect(revoked?.message).toContain(`serial ${client.serial.replace(/^0+/, '')}`);
  });

  it('warns about a CRL due within a day and passes a current one: exit 0', async () => {
    const file = profile('soon', { ca: [pki.root.cert, pki.intermediate.cert], crl: [crl.soon, crl.root] }, false);
    const r = await runCli(['certs', 'verify', file, '--json']);
    expect(r.code, r.stdout).toBe(0);
    const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;
    // The openssl CA issues 30-day certificates: CERT_EXPIRES_SOON warnings are expected beside it.
    expect(findings.filter((f) => f.code !== 'CERT_EXPIRES_SOON').map((f) => `${f.severity}:${f.code}`)).toEqual(['warning:CRL_EXPIRES_SOON']);
  });
});

describe('certs status', () => {
  it('lists every CRL with its next update and flags (text and JSON)', async () => {
    profile('stale', { ca: [pki.root.cert, pki.intermediate.cert], crl: [crl.issuing, crl.staleRoot] });
    profile('soon', { ca: [pki.root.cert, pki.intermediate.cert], crl: [crl.soon, crl.root] }, false);
    const json = await runCli(['certs', 'status', '--profiles', profiles, '--json']);
    const doc = JSON.parse(json.stdout) as { profiles: { name: string; crls: { source: string; flags: string[] }[] }[] };
    const flags = Object.fromEntries(doc.profiles.flatMap((p) => p.crls.map((c) => [`${p.name}:${c.source}`, c.flags.join(',')])));
    expect(flags).toEqual({
      [`soon:${crl.soon}`]: 'SOON',
      [`soon:${crl.root}`]: '',
      [`stale:${crl.issuing}`]: 'REVOKES_CLIENT',
      [`stale:${crl.staleRoot}`]: 'STALE',
    });
    const text = await runCli(['certs', 'status', '--profiles', profiles]);
    expect(text.stdout).toMatch(/NEXT UPDATE\s+FLAG/);
    expect(text.stdout).toContain('STALE');
  });
});

describe('dry-run', () => {
  it('exits 3 with server_cert_revoked for a revoked server certificate', async () => {
    profile('bank', { ca: [pki.root.cert, pki.intermediate.cert], crl: [crl.issuing, crl.root] }, false);
    const nodeFile = join(dir, 'node.json');
    writeFileSync(nodeFile, JSON.stringify({ id: 'revoked', request: { method: 'GET', url: `https://localhost:${server.port}/` }, tls: { profile: 'bank' } }));
    const r = await runCli(['dry-run', nodeFile, '--profiles', profiles, '--json'], { env: { SVCNODE_PROFILES: undefined } });
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const result = JSON.parse(r.stdout) as { failure: { category: string; hint: string } };
    expect(result.failure.category).toBe('server_cert_revoked');
    expect(result.failure.hint).toContain(crl.issuing);
  });
});

describe('metrics', () => {
  it('publish CRL next-update timestamps and count hard-mode revocation verdicts', async () => {
    const loaded = await loadProfile(profile('soon', { ca: [pki.root.cert, pki.intermediate.cert], crl: [crl.soon, crl.root] }, false));
    const metrics = new Metrics();
    metrics.setCertificateExpiry(loaded);
    metrics.observeAttempt({ ok: false, nodeId: 'n', request: { method: 'GET', url: 'https://x/' }, tls: null, response: null, failure: { phase: 'tls', category: 'server_cert_revoked', code: 'CERT_REVOKED', message: '', hint: '' }, timings: { connectMs: 0, handshakeMs: 0, totalMs: 1 }, attempts: 1 });
    metrics.observeRevocation({ profile: 'soon', result: 'unknown' });
    const text = await metrics.registry.metrics();
    const next = /svcnode_crl_next_update_timestamp_seconds\{profile="soon",issuer="CN=Bank Issuing CA",source="[^"]+"\} (\d+)/.exec(text);
    expect(Number(next?.[1]) * 1000).toBeGreaterThan(Date.now());
    expect(Number(next?.[1]) * 1000).toBeLessThan(Date.now() + 3 * HOUR);
    expect(text).toContain('svcnode_revocation_checks_total{result="revoked"} 1');
    expect(text).toContain('svcnode_revocation_checks_total{result="unknown"} 1');
  });
});
