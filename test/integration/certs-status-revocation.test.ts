/**
 * `certs status` and `certs verify` on profiles that fail calls although they load: a revoked
 * client certificate, a CRL URL that cannot be downloaded, a trust.ca intermediate revoked by the
 * profile's own CRL. Both exit 2 and say which; a stale CRL in soft mode is a warning (exit 0).
 * Real openssl CA, CRLs and the built CLI.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { listen } from '../helpers/net.js';
import { createOpensslPki, type OpensslPki } from '../helpers/openssl-ca.js';

const DAY = 86_400_000;
/** A port nothing listens on (taken, then closed): the download is refused at once. */
let deadPort: number;
let DEAD_URL: string;

let dir: string;
/** A CRL server that takes the connection and never answers. */
let silent: net.Server | undefined;
const held = new Set<net.Socket>();
let pki: OpensslPki;
let all: string;
let healthy: string;
const profile = (into: string, name: string, doc: unknown): string => {
  mkdirSync(into, { recursive: true });
  const file = join(into, `${name}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return file;
};
const certs = (args: string[]): Promise<CliResult> => runCli(['certs', ...args], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 30_000 });

beforeAll(async () => {
  const probe = net.createServer();
  deadPort = await listen(probe, 0);
  await new Promise((resolve) => probe.close(resolve));
  DEAD_URL = `http://127.0.0.1:${deadPort}/issuing.crl`;
  dir = mkdtempSync(join(tmpdir(), 'svcnode-status-'));
  pki = createOpensslPki(dir);
  const good = pki.issueClient('bot-good');
  const revoked = pki.issueClient('bot-revoked');
  const issuing2 = pki.addIntermediate('issuing2', 'Bank Issuing CA 2');
  pki.revoke(pki.intermediate, revoked.cert);
  pki.revoke(pki.root, issuing2.cert);
  const issuingCrl = pki.gencrl(pki.intermediate, join(dir, 'issuing.crl'));
  const rootCrl = pki.gencrl(pki.root, join(dir, 'root.crl'));
  const staleCrl = pki.gencrl(pki.intermediate, join(dir, 'issuing-stale.crl'), { lastUpdate: new Date(Date.now() - 10 * DAY), nextUpdate: new Date(Date.now() - DAY) });
  const ca = [pki.root.cert, pki.intermediate.cert];
  all = join(dir, 'profiles');
  profile(all, 'revokedclient', { client: { certificate: revoked.cert, key: revoked.key }, trust: { ca, crl: [issuingCrl, rootCrl] } });
  profile(all, 'unreach', { client: { certificate: good.cert, key: good.key }, trust: { ca, crl: [DEAD_URL, rootCrl] } });
  profile(all, 'revokedca', { trust: { ca: [...ca, issuing2.cert], crl: [issuingCrl, rootCrl] } });
  healthy = join(dir, 'healthy');
  profile(healthy, 'softstale', { client: { certificate: good.cert, key: good.key }, trust: { ca, crl: [staleCrl, rootCrl], revocation: { mode: 'soft' } } });
  profile(healthy, 'softdown', { trust: { ca, crl: [DEAD_URL, rootCrl], revocation: { mode: 'soft' } } });
}, 30_000);

afterAll(async () => {
  silent?.close();
  for (const socket of held) socket.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('certs status', () => {
  it('exits 2 for profiles that load but fail calls, flags the revoked certificates and the unavailable URL, and prints each problem', async () => {
    const r = await certs(['status', '--profiles', all]);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('revokedclient') && l.includes('CN=bot-revoked'))).toMatch(/\sREVOKED$/);
    expect(lines.find((l) => l.startsWith('revokedca') && l.includes('CN=Bank Issuing CA 2'))).toMatch(/\sREVOKED$/);
    expect(lines.find((l) => l.startsWith('unreach') && l.includes(DEAD_URL))).toMatch(/\sUNAVAILABLE$/);
    expect(lines.find((l) => l.startsWith('revokedca') && l.includes('root.crl'))).toMatch(/REVOKES_TRUST_CA/);
    for (const [name, code] of [['revokedclient', 'CLIENT_CERT_REVOKED'], ['unreach', 'CRL_UNAVAILABLE'], ['revokedca', 'TRUST_CA_REVOKED']]) {
      expect(lines.some((l) => l.startsWith(`${name}: error ${code} `)), `${name} ${code}\n${r.stdout}`).toBe(true);
    }
    expect(r.stdout).toContain(`${DEAD_URL}: the CRL cannot be downloaded (connect ECONNREFUSED 127.0.0.1:${deadPort})`);
    expect(r.stdout).not.toContain(`${DEAD_URL}: ${DEAD_URL}`);
    // The openssl CA issues 30-day certificates: flagged SOON in the table and, as certs verify prints it, in a line.
    expect(r.stdout).toMatch(/^revokedclient: warning CERT_EXPIRES_SOON .*CN=bot-revoked/m);
  });

  it('--json: the same verdict and exit code, every finding under its profile, the unavailable URL among the CRLs', async () => {
    const r = await certs(['status', '--profiles', all, '--json']);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { profiles: { name: string; findings: { code: string; severity: string }[]; crls: { source: string; flags: string[]; thisUpdate: string | null }[] }[] };
    const of = (name: string) => doc.profiles.find((p) => p.name === name);
    expect(of('revokedclient')?.findings).toContainEqual(expect.objectContaining({ code: 'CLIENT_CERT_REVOKED', severity: 'error' }));
    expect(of('revokedca')?.findings).toContainEqual(expect.objectContaining({ code: 'TRUST_CA_REVOKED', severity: 'error' }));
    expect(of('unreach')?.crls).toContainEqual({ source: DEAD_URL, issuer: 'unknown', thisUpdate: null, nextUpdate: null, flags: ['UNAVAILABLE'] });
  });

  it('exits 0 when the only problems are warnings: a stale or unavailable CRL in soft mode', async () => {
    const r = await certs(['status', '--profiles', healthy]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^softstale: warning CRL_STALE .*soft revocation checking lets calls through/m);
    expect(r.stdout).toMatch(/^softdown: warning CRL_UNAVAILABLE .*soft revocation checking lets the calls whose chain that CRL covers through unchecked/m);
    expect(r.stdout).toMatch(/^softstale\s.*issuing-stale\.crl.*STALE$/m);
  });
});

describe('a CRL URL that takes the connection and never answers', () => {
  it('costs certs status one download timeout (10 s), not the HTTP client\'s 300 s', async () => {
    silent = net.createServer((socket) => void held.add(socket.on('error', () => undefined)));
    const port = await listen(silent, 0);
    const url = `http://127.0.0.1:${port}/issuing.crl`;
    const into = join(dir, 'silent');
    profile(into, 'quiet', { trust: { ca: [pki.root.cert, pki.intermediate.cert], crl: [url, join(dir, 'root.crl')] } });
    const started = Date.now();
    const r = await runCli(['certs', 'status', '--profiles', into], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 60_000 });
    const tookMs = Date.now() - started;
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toContain(`${url}: the CRL cannot be downloaded (no complete answer within 10 s)`);
    expect(tookMs).toBeLessThan(25_000);
  }, 70_000);
});

describe('certs status with no profile that loads', () => {
  it('says no profile loaded (not "no certificates") and exits 2', async () => {
    const into = join(dir, 'none-loads');
    profile(into, 'broken', { trust: { ca: [pki.root.cert], crl: [join(dir, 'nothing-here.crl')] } });
    const r = await certs(['status', '--profiles', into]);
    expect(r.code).toBe(2);
    expect(r.stdout.trim()).toBe('no profile loaded');
    expect(r.stderr).toContain('broken.json');
  });
});

describe('certs verify', () => {
  it('reports a trust.ca intermediate the profile\'s own CRL revokes (exit 2)', async () => {
    const r = await certs(['verify', join(all, 'revokedca.json')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^error TRUST_CA_REVOKED .*root\.crl: trust\.ca certificate "CN=Bank Issuing CA 2" \(serial [0-9A-F]+\) was revoked on .* \(keyCompromise\) .*: every server chain through it fails as server_cert_revoked/m);
  });

  it('hard mode with a trust.ca CA that no CRL covers: CRL_MISSING naming it (exit 2); soft mode or every level covered: none', async () => {
    const ca = [pki.root.cert, pki.intermediate.cert];
    const onlyIssuing = profile(join(dir, 'levels'), 'onlyissuing', { trust: { ca, crl: [join(dir, 'issuing.crl')] } });
    const r = await certs(['verify', onlyIssuing]);
    expect(r.code).toBe(2);
    const missing = r.stdout.split('\n').filter((l) => l.startsWith('error CRL_MISSING'));
    expect(missing).toHaveLength(1);
    expect(missing[0]).toContain('trust.crl has no CRL of trust.ca certificate "CN=Bank Test Root"');
    const soft = profile(join(dir, 'levels'), 'softlevels', { trust: { ca, crl: [join(dir, 'issuing.crl')], revocation: { mode: 'soft' } } });
    expect((await certs(['verify', soft])).stdout).not.toContain('CRL_MISSING');
    const both = profile(join(dir, 'levels'), 'both', { trust: { ca, crl: [join(dir, 'issuing.crl'), join(dir, 'root.crl')] } });
    const ok = await certs(['verify', both]);
    expect(ok.stdout).not.toContain('CRL_MISSING');
    expect(ok.code).toBe(0);
  });

  it('a stale CRL is an error in hard mode and a warning in soft mode', async () => {
    const soft = await certs(['verify', join(healthy, 'softstale.json'), '--json']);
    expect(soft.code).toBe(0);
    expect((JSON.parse(soft.stdout) as { findings: { code: string; severity: string }[] }).findings).toContainEqual(expect.objectContaining({ code: 'CRL_STALE', severity: 'warning' }));
    const hard = profile(join(dir, 'hard'), 'hardstale', { trust: { ca: [pki.root.cert, pki.intermediate.cert], crl: [join(dir, 'issuing-stale.crl'), join(dir, 'root.crl')] } });
    const r = await certs(['verify', hard]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^error CRL_STALE .*hard revocation checking fails every call/m);
  });
});
