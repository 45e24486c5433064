/**
 * CRL distribution points (trust.revocation.distributionPoints) and the revocation verdicts of a
 * Result. A PKI run by the openssl CLI names `crlDistributionPoints = URI:http://127.0.0.1:PORT/…`
 * in its intermediate and leaves; a test HTTP server serves the CRLs and counts requests;
 * `openssl s_server` backends present the chains; two real worker processes share a real Redis.
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, Queue } from 'bullmq';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { retryDelay } from '../../src/invoke/retry.js';
import { CrlFetcher, refreshAt } from '../../src/pki/crl-fetch.js';
import { CDP_DEFAULTS, DistributionPointCrls, distributionPointEvents } from '../../src/pki/distribution-points.js';
import { startWorker } from '../../src/queue/worker.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { profileDeps, withAgents } from '../helpers/deps.js';
import { listen, waitFor } from '../helpers/net.js';
import { createOpensslPki, type OpensslCa, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

const DAY = 86_400_000;
const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000 };
const PENDING = 'is being downloaded in the background';

let dir: string;
let base: string;
let crlServer: http.Server;
let pki: OpensslPki;
let issuing: OpensslCa;
let redis: TestRedis;
const hits = new Map<string, number>();
/** Path → CRL file the test HTTP server answers with. */
const served = new Map<string, string>();
const leaves: Record<'good' | 'revoked' | 'stale' | 'fleet' | 'hostile' | 'late', OpensslIssued | undefined> = { good: undefined, revoked: undefined, stale: undefined, fleet: undefined, hostile: undefined, late: undefined };
const servers: Partial<Record<keyof typeof leaves, OpensslServer>> = {};
const crl = { issuing: '', stale: '', root: '' };

const count = (path: string): number => hits.get(path) ?? 0;

function node(server: OpensslServer | undefined, retry: NodeDefinition['retry'] = { limit: 0 }): NodeDefinition {
  return { id: 'cdp', request: { method: 'GET', url: `https://localhost:${server?.port ?? 0}/` }, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry };
}

/** A profile with distribution points, loaded with its own fetcher (a fresh process, as far as CRLs go). */
async function profileWith(revocation: NonNullable<ProfileDocument['trust']>['revocation'], extra: Partial<NonNullable<ProfileDocument['trust']>> = {}): Promise<Awaited<ReturnType<typeof loadProfile>>> {
  const file = join(dir, 'profiles', 'bank.json');
  writeFileSync(file, JSON.stringify({ trust: { ca: [pki.root.cert, issuing.cert], revocation, ...extra } }));
  return loadProfile(file, { crlFetcher: new CrlFetcher() });
}


beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-cdp-'));
  mkdirSync(join(dir, 'profiles'));
  crlServer = http.createServer((req, res) => {
    const path = req.url ?? '';
    hits.set(path, count(path) + 1);
    const file = served.get(path);
    if (!file) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(readFileSync(file));
  });
  base = `http://127.0.0.1:${await listen(crlServer, 0)}`;
  pki = createOpensslPki(dir);
  issuing = pki.addIntermediate('cdp-issuing', 'Bank CDP Issuing CA', { crlUrl: `${base}/root.crl` });
  for (const name of ['good', 'revoked', 'stale', 'fleet', 'late'] as const) leaves[name] = pki.issueServer(name, { ca: issuing, crlUrl: `${base}/${name}/issuing.crl` });
  leaves.hostile = pki.issueServer('hostile', { ca: issuing, crlUrl: Array.from({ length: CDP_DEFAULTS.maxUrlsPerProfile + 8 }, (_, i) => `${base}/hostile/${i}.crl`).join(', URI:') });
  pki.revoke(issuing, (leaves.revoked as OpensslIssued).cert);
  crl.issuing = pki.gencrl(issuing, join(dir, 'issuing.crl'), { der: true });
  crl.stale = pki.gencrl(issuing, join(dir, 'issuing-stale.crl'), { lastUpdate: new Date(Date.now() - 10 * DAY), nextUpdate: new Date(Date.now() - DAY) });
  crl.root = pki.gencrl(pki.root, join(dir, 'root.crl'));
  served.set('/root.crl', crl.root);
  for (const name of ['good', 'revoked', 'fleet', 'late'] as const) served.set(`/${name}/issuing.crl`, crl.issuing);
  served.set('/stale/issuing.crl', crl.stale);
  const started = await Promise.all([
    startRedis(),
    ...(Object.keys(leaves) as (keyof typeof leaves)[]).map(async (name) => {
      const leaf = leaves[name] as OpensslIssued;
      servers[name] = await startOpensslServer({ certFile: leaf.cert, keyFile: leaf.key, chainFile: issuing.cert, verify: 'none', tls: 'both' });
    }),
  ]);
  redis = started[0];
}, 30_000);

afterAll(async () => {
  crlServer?.closeAllConnections();
  await Promise.all([...Object.values(servers).map((s) => s.close()), redis?.close(), new Promise((r) => (crlServer ? crlServer.close(r) : r(undefined)))]);
  await rm(dir, { recursive: true, force: true });
});

describe('distribution points of trust.ca and of server chains', () => {
  it('the CDP of a trust.ca intermediate is downloaded at profile load; a leaf CDP only once a handshake names it', async () => {
    const rootBefore = count('/root.crl');
    const profile = await profileWith({ distributionPoints: true });
    expect(count('/root.crl')).toBe(rootBefore + 1);
    expect(profile.trust.crls?.map((c) => c.source)).toEqual([`${base}/root.crl`]);
    expect(count('/good/issuing.crl')).toBe(0);
  });

  it('hard mode: the first call with an unknown CDP fails retryably, naming the download; the retry passes once the CRL is there', async () => {
    const profile = await profileWith({ distributionPoints: true, mode: 'hard' });
    await withAgents(async (agents) => {
      const first = await invoke(node(servers.good), {}, profileDeps(new Map([['bank', profile]]), agents));
      expect(first.failure?.category, JSON.stringify(first.failure)).toBe('server_cert_untrusted');
      expect(first.failure?.code).toBe('server_cert_revocation_unknown');
      expect(first.failure?.hint).toContain(`${base}/good/issuing.crl`);
      expect(first.failure?.hint).toContain(PENDING);
      expect(retryDelay(first, node(servers.good, { limit: 2 }), 1)).toBeTypeOf('number');
      await waitFor(() => count('/good/issuing.crl') === 1, 5_000);
      const retried = await invokeWithRetries(node(servers.good, { limit: 3, backoffMs: 100 }), {}, profileDeps(new Map([['bank', profile]]), agents));
      expect(retried.failure, JSON.stringify(retried.failure)).toBeNull();
      expect(retried.tls?.revocation).toEqual([{ source: 'crl', result: 'ok' }]);
      expect(count('/good/issuing.crl')).toBe(1);
    });
  });

  it('a leaf revoked in its CDP CRL fails as server_cert_revoked (after the job retry), the hint naming serial and CRL URL', async () => {
    const profile = await profileWith({ distributionPoints: true });
    const r = await withAgents((agents) => invokeWithRetries(node(servers.revoked, { limit: 3, backoffMs: 200 }), {}, profileDeps(new Map([['bank', profile]]), agents)));
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.hint).toContain(`serial ${(leaves.revoked as OpensslIssued).serial.replace(/^0+/, '')}`);
    expect(r.failure?.hint).toContain(`${base}/revoked/issuing.crl`);
    expect(r.attempts).toBeGreaterThan(1);
  });

  it('soft mode: an unknown CDP and a stale CDP CRL let the call through with a warning in the Result', async () => {
    const profile = await profileWith({ distributionPoints: true, mode: 'soft' });
    await withAgents(async (agents) => {
      const r = await invoke(node(servers.stale), {}, profileDeps(new Map([['bank', profile]]), agents));
      expect(r.ok, JSON.stringify(r.failure)).toBe(true);
      expect(r.tls?.revocation?.map(({ message: _m, ...v }) => v)).toEqual([{ source: 'crl', result: 'unknown', subject: 'CN=localhost' }]);
      expect(r.tls?.revocation?.[0]?.message).toContain(`${base}/stale/issuing.crl ${PENDING}`);
      await waitFor(() => profile.trust.distributionPoints?.crls().length === 1, 5_000);
      const later = await withAgents((fresh) => invoke(node(servers.stale), {}, profileDeps(new Map([['bank', profile]]), fresh)));
      expect(later.ok).toBe(true);
      expect(later.tls?.revocation?.[0]?.result).toBe('unknown');
      expect(later.tls?.revocation?.[0]?.message).toContain(`no current CRL covers "CN=localhost": the CRL ${base}/stale/issuing.crl was due for renewal at`);
    });
  });

  it(`a chain naming more than ${CDP_DEFAULTS.maxUrlsPerProfile} CDP URLs: the profile follows that many, ignores the rest and says so once`, async () => {
    const refused: { profile: string; url: string; message: string }[] = [];
    const failed: typeof refused = [];
    const onRefused = (e: (typeof refused)[number]): void => void refused.push(e);
    const onFailed = (e: (typeof refused)[number]): void => void failed.push(e);
    distributionPointEvents.on('refused', onRefused).on('failed', onFailed);
    try {
      const profile = await profileWith({ distributionPoints: true, mode: 'soft' });
      await withAgents(async (agents) => {
        for (let i = 0; i < 2; i++) expect((await invoke(node(servers.hostile), {}, profileDeps(new Map([['bank', profile]]), agents))).ok).toBe(true);
      });
      // root.crl (trust.ca) takes one place; the leaf's URLs the other 31.
      await waitFor(() => [...hits.keys()].filter((p) => p.startsWith('/hostile/')).length === CDP_DEFAULTS.maxUrlsPerProfile - 1, 5_000);
      await new Promise((r) => setTimeout(r, 200));
      const fetched = [...hits.keys()].filter((p) => p.startsWith('/hostile/'));
      expect(fetched).toHaveLength(CDP_DEFAULTS.maxUrlsPerProfile - 1);
      expect(fetched.every((p) => count(p) === 1)).toBe(true);
      expect(refused).toHaveLength(1);
      expect(refused[0]?.url).toBe(`${base}/hostile/${CDP_DEFAULTS.maxUrlsPerProfile - 1}.crl`);
      expect(refused[0]?.message).toContain('trust.crl');
      // The server answers 404 for these: each failed download is reported once and counts as no data.
      await waitFor(() => failed.length === CDP_DEFAULTS.maxUrlsPerProfile - 1, 5_000);
      expect(failed[0]?.message).toContain('HTTP 404');
      const hard = await profileWith({ distributionPoints: true, mode: 'hard' });
      await withAgents(async (agents) => {
        await invoke(node(servers.hostile), {}, profileDeps(new Map([['bank', hard]]), agents));
        await waitFor(() => failed.length >= 2 * (CDP_DEFAULTS.maxUrlsPerProfile - 1), 5_000);
        const r = await invoke(node(servers.hostile), {}, profileDeps(new Map([['bank', hard]]), agents));
        expect(r.failure?.code, JSON.stringify(r.failure)).toBe('server_cert_revocation_unknown');
        expect(r.failure?.hint).toContain('cannot be downloaded');
        expect(r.failure?.hint).toContain(`${base}/hostile/2.crl and ${CDP_DEFAULTS.maxUrlsPerProfile + 5} more`);
        expect(retryDelay(r, node(servers.hostile, { limit: 2 }), 1)).toBeUndefined();
      });
    } finally {
      distributionPointEvents.off('refused', onRefused).off('failed', onFailed);
    }
  });
});

describe('refreshing a learnt distribution point', () => {
  it('a CDP CRL whose refresh fails stays in use, is said, and is tried again once a minute, not at every handshake', async () => {
    const leaf = pki.issueServer('refresh', { ca: issuing, crlUrl: `${base}/refresh/issuing.crl` });
    served.set('/refresh/issuing.crl', crl.issuing);
    const trust = [new X509Certificate(readFileSync(pki.root.cert)), new X509Certificate(readFileSync(issuing.cert))];
    const chain = [new X509Certificate(readFileSync(leaf.cert)), trust[1] as X509Certificate];
    let clock = Date.now();
    const fetcher = new CrlFetcher(undefined, () => clock);
    const points = await DistributionPointCrls.create('refresh', trust, fetcher, new Set([`${base}/root.crl`]), 0, () => clock);
    const stale: { profile: string; url: string; message: string }[] = [];
    const onStale = (e: (typeof stale)[number]): void => void stale.push(e);
    distributionPointEvents.on('stale', onStale);
    try {
      points.learn(chain);
      await waitFor(() => points.crls().length === 1, 5_000);
      const held = points.crls()[0] as NonNullable<ReturnType<typeof points.crls>[number]>;
      served.delete('/refresh/issuing.crl');
      clock = refreshAt(held, Date.now()) + 1_000;
      points.learn(chain);
      await waitFor(() => stale.length === 1, 5_000);
      expect(stale[0]).toEqual({ profile: 'refresh', url: `${base}/refresh/issuing.crl`, message: expect.stringMatching(/cannot be downloaded \(HTTP 404.*\); the copy downloaded at \S+ stays in use until its nextUpdate$/) as string });
      expect(points.crls()).toEqual([held]);
      // Before: due at every handshake, so each new connection downloaded again.
      for (let i = 0; i < 5; i++) {
        clock += 5_000;
        points.learn(chain);
      }
      await new Promise((r) => setTimeout(r, 200));
      expect(count('/refresh/issuing.crl')).toBe(2);
      clock += 60_000;
      points.learn(chain);
      await waitFor(() => count('/refresh/issuing.crl') === 3 && stale.length === 2, 5_000);
    } finally {
      distributionPointEvents.off('stale', onStale);
    }
  });
});

describe('a soft-mode warning in the Result, from the CLI and from workers', () => {
  let profiles: string;
  let nodes: string;

  beforeAll(() => {
    profiles = join(dir, 'fleet-profiles');
    nodes = join(dir, 'fleet-nodes');
    mkdirSync(profiles);
    mkdirSync(nodes);
    writeFileSync(join(profiles, 'cdp.json'), JSON.stringify({ trust: { ca: [pki.root.cert, issuing.cert], revocation: { distributionPoints: true } } }));
    writeFileSync(join(profiles, 'softstale.json'), JSON.stringify({ trust: { ca: [pki.root.cert, issuing.cert], crl: [crl.stale, crl.root], revocation: { mode: 'soft' } } }));
    const def = (id: string, server: OpensslServer | undefined, profile: string): void =>
      writeFileSync(join(nodes, `${id}.json`), JSON.stringify({ id, request: { method: 'GET', url: `https://localhost:${server?.port ?? 0}/` }, tls: { profile }, timeouts: TIMEOUTS, retry: { limit: 3, backoffMs: 300 } }));
    def('fleet', servers.fleet, 'cdp');
    def('soft-stale', servers.good, 'softstale');
  });

  it('certs status lists the CRL of the trust.ca distribution point; certs verify flags one that cannot be downloaded', async () => {
    const json = await runCli(['certs', 'status', '--profiles', profiles, '--json']);
    const doc = JSON.parse(json.stdout) as { profiles: { name: string; crls: { source: string; issuer: string }[] }[] };
    expect(doc.profiles.find((p) => p.name === 'cdp')?.crls).toEqual([expect.objectContaining({ source: `${base}/root.crl`, issuer: 'CN=Bank Test Root' })]);
    const broken = pki.addIntermediate('cdp-broken', 'Bank Broken CDP CA', { crlUrl: `${base}/missing/root.crl` });
    const file = join(dir, 'broken.json');
    writeFileSync(file, JSON.stringify({ trust: { ca: [pki.root.cert, broken.cert], revocation: { distributionPoints: true } } }));
    const verify = await runCli(['certs', 'verify', file, '--json']);
    const findings = (JSON.parse(verify.stdout) as { findings: { code: string; severity: string; file?: string }[] }).findings;
    expect(findings).toContainEqual(expect.objectContaining({ code: 'CRL_UNAVAILABLE', severity: 'error', file: `${base}/missing/root.crl` }));
  });

  it('dry-run --json: ok (exit 0) with the unknown verdict in tls.revocation', async () => {
    const r = await runCli(['dry-run', join(nodes, 'soft-stale.json'), '--profiles', profiles, '--json'], { env: { SVCNODE_PROFILES: undefined } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as Result;
    expect(result.ok).toBe(true);
    expect(result.tls?.revocation).toEqual([{ source: 'crl', result: 'unknown', subject: 'CN=localhost', message: expect.stringMatching(/^no current CRL covers "CN=localhost": the CRL .*issuing-stale\.crl was due for renewal at /) as string }]);
    // Before: the text report printed "result OK" and no revocation line at all.
    const text = await runCli(['dry-run', join(nodes, 'soft-stale.json'), '--profiles', profiles], { env: { SVCNODE_PROFILES: undefined } });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('revocation  crl UNKNOWN: not checked (no current revocation data) (CN=localhost)');
    expect(text.stdout).toContain('no current CRL covers "CN=localhost"');
    expect(text.stdout).toContain('result      OK, revocation status unknown (soft mode let the call through)');
  });

  it('dry-run of a hard-mode node whose leaf CRL is being downloaded: the hint says a dry-run makes one attempt unless --retry', async () => {
    const once = await runCli(['dry-run', join(nodes, 'fleet.json'), '--profiles', profiles, '--json'], { env: { SVCNODE_PROFILES: undefined } });
    expect(once.code).toBe(3);
    const result = JSON.parse(once.stdout) as Result;
    expect(result.failure?.hint).toContain(PENDING);
    // Before: only "the call is retried within its retry.limit", which a dry-run without --retry does not do.
    expect(result.failure?.hint).toContain('a dry-run makes one attempt: run it with --retry to wait for the download');
    const retried = await runCli(['dry-run', join(nodes, 'fleet.json'), '--profiles', profiles, '--json', '--retry'], { env: { SVCNODE_PROFILES: undefined } });
    expect(retried.code, retried.stdout).toBe(0);
  });

  it('two worker processes: each CDP CRL is downloaded once for the fleet, the leaf\'s at start; a job returns the soft-mode warning', async () => {
    const before = { root: count('/root.crl'), leaf: count('/fleet/issuing.crl') };
    const args = ['worker', '--redis', redis.url, '--nodes', nodes, '--profiles', profiles, '--metrics-port', '0'];
    const workers = [spawnCli(args, { env: { SVCNODE_LOG_LEVEL: 'info' } }), spawnCli(args, { env: { SVCNODE_LOG_LEVEL: 'info' } })];
    const queue = new Queue('service-node-invocations', { connection: { host: redis.host, port: redis.port } });
    try {
      await Promise.all(workers.map((w) => w.waitForLine(/"queue":"service-node-invocations"/, { stream: 'stderr', timeoutMs: 20_000 })));
      expect(count('/root.crl') - before.root).toBe(1);
      // Warm-up handshakes at start learn the leaf's distribution point before any job: one download for the fleet.
      await waitFor(() => count('/fleet/issuing.crl') - before.leaf === 1, 10_000);
      const jobs = await queue.addBulk([...Array.from({ length: 8 }, () => ({ name: 'invoke', data: { nodeId: 'fleet', context: {} } })), { name: 'invoke', data: { nodeId: 'soft-stale', context: {} } }]);
      const results = await waitFor(async () => {
        const done = await Promise.all(jobs.map(async (j) => (await Job.fromId(queue, j.id as string))?.returnvalue as Result | undefined));
        return done.every((d) => d) ? (done as Result[]) : undefined;
      }, 20_000);
      for (const r of results.slice(0, 8)) expect(r.failure, JSON.stringify(r.failure)).toBeNull();
      expect(count('/fleet/issuing.crl') - before.leaf).toBe(1);
      const soft = results[8] as Result;
      expect(soft.ok, JSON.stringify(soft.failure)).toBe(true);
      expect(soft.tls?.revocation).toEqual([{ source: 'crl', result: 'unknown', subject: 'CN=localhost', message: expect.stringMatching(/^no current CRL covers "CN=localhost": the CRL .*issuing-stale\.crl was due for renewal at /) as string }]);
      // Stored Results stay lean: the fleet's verdicts were all ok, so they carry none.
      expect(results[0]?.tls).not.toHaveProperty('revocation');
    } finally {
      await queue.close();
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 40_000);

  it("a node file added while the worker runs: its backend's leaf CRL is downloaded before any job, as at start", async () => {
    const lateNodes = join(dir, 'late-nodes');
    mkdirSync(lateNodes);
    const logs: Record<string, unknown>[] = [];
    const worker = await startWorker({ redisUrl: redis.url, nodesDir: lateNodes, profilesDir: profiles, reloadIntervalMs: 200, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) });
    try {
      expect(count('/late/issuing.crl')).toBe(0);
      writeFileSync(join(lateNodes, 'late.json'), JSON.stringify({ id: 'late', request: { method: 'GET', url: `https://localhost:${servers.late?.port ?? 0}/` }, tls: { profile: 'cdp' }, timeouts: TIMEOUTS }));
      await waitFor(() => count('/late/issuing.crl') === 1, 10_000);
      expect(logs).toContainEqual(expect.objectContaining({ nodeId: 'late', handshakes: 1, msg: 'learnt the CRL distribution points of backends' }));
    } finally {
      await worker.close(5_000);
    }
  }, 20_000);
});
