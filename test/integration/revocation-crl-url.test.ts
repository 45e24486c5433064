/**
 * CRLs from http URLs: downloaded at profile load (never on the call path), shared through a real
 * Redis so a fleet downloads each CRL once per refresh (counted at the test's HTTP server, with
 * two fetchers and with two worker processes), refreshed before nextUpdate, and used by calls.
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProfileWatcher } from '../../src/definitions/profile-watcher.js';
import { Registry } from '../../src/definitions/registry.js';
import { invoke } from '../../src/invoke/execute.js';
import { CrlFetcher, refreshAt } from '../../src/pki/crl-fetch.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { crlFindings } from '../../src/pki/revocation-load.js';
import { RedisCrlStore } from '../../src/queue/redis-crl-store.js';
import { AgentPool } from '../../src/tls/agents.js';
import { spawnCli } from '../helpers/cli.js';
import { profileDeps } from '../helpers/deps.js';
import { listen } from '../helpers/net.js';
import { createOpensslPki, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

let dir: string;
let pki: OpensslPki;
let revoked: OpensslIssued;
let backend: OpensslServer;
let redis: TestRedis;
let crlServer: http.Server;
let base: string;
const hits = new Map<string, number>();
/** Path prefixes the CRL server answers 503 for: a CRL server that is down. */
const down = new Set<string>();
/** Path prefixes answered 200 with an HTML page instead of the CRL: a captive portal or proxy. */
const portal = new Set<string>();
const files: Record<string, string> = {};
const connections: Redis[] = [];

function redisClient(): Redis {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  connections.push(c);
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-crl-url-'));
  pki = createOpensslPki(dir);
  revoked = pki.issueServer('revoked');
  pki.revoke(pki.intermediate, revoked.cert);
  files.issuing = pki.gencrl(pki.intermediate, join(dir, 'issuing.crl'), { der: true });
  files.root = pki.gencrl(pki.root, join(dir, 'root.crl'));
  crlServer = http.createServer((req, res) => {
    const path = req.url ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if ([...down].some((prefix) => path.startsWith(prefix))) {
      res.writeHead(503).end();
      return;
    }
    if ([...portal].some((prefix) => path.startsWith(prefix))) {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>Please sign in to the guest network</html>');
      return;
    }
    const name = /\/(issuing|root)\.crl$/.exec(path)?.[1];
    if (!name || !files[name]) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(readFileSync(files[name]));
  });
  base = `http://127.0.0.1:${await listen(crlServer, 0)}`;
  [redis, backend] = await Promise.all([startRedis(), startOpensslServer({ certFile: revoked.cert, keyFile: revoked.key, chainFile: pki.intermediate.cert, verify: 'none', tls: 'both' })]);
}, 30_000);

afterAll(async () => {
  for (const c of connections) c.disconnect();
  crlServer?.closeAllConnections();
  await Promise.all([backend?.close(), redis?.close(), new Promise((r) => (crlServer ? crlServer.close(r) : r(undefined)))]);
  await rm(dir, { recursive: true, force: true });
});

const trust = (): X509Certificate[] => [new X509Certificate(readFileSync(pki.root.cert)), new X509Certificate(readFileSync(pki.intermediate.cert))];

describe('what the findings and verdicts of a URL CRL say', () => {
  it('a stale or soon-due URL CRL is renewed at its URL, not by "replacing the file"', async () => {
    const url = `${base}/hints/issuing.crl`;
    const { crl } = await new CrlFetcher().load(url, trust());
    const later = new Date((crl.nextUpdate?.getTime() ?? 0) + 60_000);
    const [stale] = crlFindings([crl], { client: undefined, trust: trust(), mode: 'hard', now: later });
    expect(stale).toMatchObject({ code: 'CRL_STALE', hint: `make ${url} serve a current CRL (the worker downloads it again once a minute while it is due)` });
    const [soon] = crlFindings([crl], { client: undefined, trust: trust(), mode: 'hard', now: new Date((crl.nextUpdate?.getTime() ?? 0) - 3_600_000) });
    expect(soon).toMatchObject({ code: 'CRL_EXPIRES_SOON', hint: `make sure ${url} serves its successor before then` });
  });
});

describe('shared through Redis', () => {
  it('two fetchers (two workers) download each CRL once per refresh', async () => {
    const url = `${base}/pair/issuing.crl`;
    let clock = Date.now();
    const a = new CrlFetcher(new RedisCrlStore(redisClient(), 'pair'), () => clock);
    const b = new CrlFetcher(new RedisCrlStore(redisClient(), 'pair'), () => clock);
    const ca = trust();
    const [fromA, fromB] = await Promise.all([a.load(url, ca), b.load(url, ca)]);
    expect(hits.get('/pair/issuing.crl')).toBe(1);
    expect(fromB.crl.revoked.has(revoked.serial.replace(/^0+/, ''))).toBe(true);
    expect(fromA.bytes.equals(fromB.bytes)).toBe(true);
    // Later loads before the refresh point come from memory: no download.
    await Promise.all([a.load(url, ca), b.load(url, ca)]);
    expect(hits.get('/pair/issuing.crl')).toBe(1);
    expect(a.due(fromA.crl)).toBe(false);
    // At the refresh point (before nextUpdate) the fleet downloads once more.
    clock = refreshAt(fromA.crl, fromA.fetchedAt) + 1;
    expect(clock).toBeLessThan(fromA.crl.nextUpdate?.getTime() ?? 0);
    expect(a.due(fromA.crl)).toBe(true);
    await Promise.all([a.load(url, ca), b.load(url, ca)]);
    expect(hits.get('/pair/issuing.crl')).toBe(2);
  });

  it('a claim that comes free after another process stored its download takes that copy', async () => {
    const url = `${base}/late/issuing.crl`;
    const ca = trust();
    const a = new CrlFetcher(new RedisCrlStore(redisClient(), 'late'));
    // B looks before A has stored, and claims after A has released: the interleaving of two workers.
    class LateLook extends RedisCrlStore {
      private first = true;
      override async get(key: string): Promise<Awaited<ReturnType<RedisCrlStore['get']>>> {
        if (!this.first) return super.get(key);
        this.first = false;
        await a.load(key, ca);
        return undefined;
      }
    }
    const b = new CrlFetcher(new LateLook(redisClient(), 'late'));
    const fromB = await b.load(url, ca);
    expect(hits.get('/late/issuing.crl')).toBe(1);
    expect(b.downloads.get(url)).toBeUndefined();
    expect(fromB.crl.revoked.has(revoked.serial.replace(/^0+/, ''))).toBe(true);
  });

  it('two worker processes download each CRL of their profile once', async () => {
    const profiles = join(dir, 'fleet-profiles');
    const nodes = join(dir, 'fleet-nodes');
    mkdirSync(profiles);
    mkdirSync(nodes);
    writeFileSync(join(profiles, 'bank.json'), JSON.stringify({ trust: { ca: [pki.root.cert, pki.intermediate.cert], crl: [`${base}/fleet/issuing.crl`, `${base}/fleet/root.crl`] } }));
    const args = ['worker', '--redis', redis.url, '--nodes', nodes, '--profiles', profiles, '--metrics-port', '0'];
    const workers = [spawnCli(args, { env: { SVCNODE_LOG_LEVEL: 'info' } }), spawnCli(args, { env: { SVCNODE_LOG_LEVEL: 'info' } })];
    try {
      await Promise.all(workers.map((w) => w.waitForLine(/"queue":"service-node-invocations"/, { stream: 'stderr', timeoutMs: 20_000 })));
      expect(hits.get('/fleet/issuing.crl')).toBe(1);
      expect(hits.get('/fleet/root.crl')).toBe(1);
      for (const w of workers) expect(w.stderr()).not.toContain('CRL_UNAVAILABLE');
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 40_000);
});

describe('refresh by profile reload', () => {
  let clock = Date.now();
  /** A registry with profile "bank" naming `crl`, and its watcher (stopped: rounds run by check()) on a fetcher with the test's clock. */
  const watched = async (name: string, crl: string[]): Promise<{ registry: Registry; watcher: ProfileWatcher; reloaded: string[]; unchanged: { before: string[]; after: string[] }[] }> => {
    const profiles = join(dir, `${name}-profiles`);
    const nodes = join(dir, `${name}-nodes`);
    mkdirSync(profiles);
    mkdirSync(nodes);
    writeFileSync(join(profiles, 'bank.json'), JSON.stringify({ trust: { ca: [pki.root.cert, pki.intermediate.cert], crl } }));
    clock = Date.now();
    const crlFetcher = new CrlFetcher(new RedisCrlStore(redisClient(), name), () => clock);
    const registry = await Registry.load(nodes, profiles, { crlFetcher });
    const reloaded: string[] = [];
    const unchanged: { before: string[]; after: string[] }[] = [];
    const codes = (p: { findings: readonly { code: string }[] }): string[] => p.findings.map((f) => f.code);
    const watcher = new ProfileWatcher(registry, { reloaded: (p) => void reloaded.push(p.version), unchanged: (p, previous) => void unchanged.push({ before: codes(previous), after: codes(p) }), failed: () => undefined, error: (error) => { throw error; } }, { intervalMs: 60_000, crlFetcher });
    await watcher.start();
    watcher.stop();
    return { registry, watcher, reloaded, unchanged };
  };

  it('a due URL CRL, or a replaced CRL file, reloads the profile with the new CRL', async () => {
    const rootFile = join(dir, 'watch-root.crl');
    writeFileSync(rootFile, readFileSync(files.root as string));
    const { registry, watcher, reloaded } = await watched('watch', [`${base}/watch/issuing.crl`, rootFile]);
    const first = registry.profiles.get('bank');
    await watcher.check();
    expect(reloaded).toEqual([]);
    expect(hits.get('/watch/issuing.crl')).toBe(1);

    // The PKI publishes a new CRL; at the refresh point the watcher reloads the profile with it.
    const another = pki.issueServer('revoked-later');
    pki.revoke(pki.intermediate, another.cert);
    files.issuing = pki.gencrl(pki.intermediate, join(dir, 'issuing-2.crl'), { der: true });
    const crl = first?.trust.crls?.[0];
    clock = refreshAt(crl as NonNullable<typeof crl>, Date.now()) + 1_000;
    await watcher.check();
    expect(hits.get('/watch/issuing.crl')).toBe(2);
    expect(reloaded).toHaveLength(1);
    expect(registry.profiles.get('bank')?.trust.crls?.[0]?.revoked.has(another.serial.replace(/^0+/, ''))).toBe(true);

    // A replaced CRL file is a profile change like any other.
    writeFileSync(rootFile, readFileSync(pki.gencrl(pki.root, join(dir, 'root-2.crl'))));
    await watcher.check();
    expect(reloaded).toHaveLength(2);
    expect(registry.profiles.get('bank')?.trust.crls?.[1]?.pem).not.toBe(first?.trust.crls?.[1]?.pem);
  });

  it('a held CRL whose refresh fails is kept, said once as CRL_REFRESH_FAILED, and tried again once a minute, not at every poll', async () => {
    const url = `${base}/refresh-down/issuing.crl`;
    const { registry, watcher, reloaded, unchanged } = await watched('refresh-down', [url, files.root as string]);
    const held = registry.profiles.get('bank');
    const crl = held?.trust.crls?.[0] as NonNullable<NonNullable<typeof held>['trust']['crls']>[number];
    expect(hits.get('/refresh-down/issuing.crl')).toBe(1);
    down.add('/refresh-down/');
    try {
      clock = refreshAt(crl, Date.now()) + 1_000;
      await watcher.check();
      expect(hits.get('/refresh-down/issuing.crl')).toBe(2);
      const bank = registry.profiles.get('bank');
      // The copy in hand stays in use: same material, so no reload (no agents retired).
      expect(bank?.trust.crls?.[0]?.pem).toBe(crl.pem);
      expect(reloaded).toEqual([]);
      const said = bank?.findings.filter((f) => f.code === 'CRL_REFRESH_FAILED');
      // The worker logs the findings an unchanged reload adds (here: the failed refresh).
      expect(unchanged).toEqual([{ before: expect.not.arrayContaining(['CRL_REFRESH_FAILED']) as string[], after: expect.arrayContaining(['CRL_REFRESH_FAILED']) as string[] }]);
      expect(said).toEqual([expect.objectContaining({ severity: 'warning', file: url, message: expect.stringMatching(/could not be refreshed: the CRL cannot be downloaded \(HTTP 503.*\); the copy downloaded at \S+ stays in use until its nextUpdate/) as string })]);
      // Before: due at every poll, so every poll downloaded again (a fleet hammering a down server).
      for (let i = 0; i < 5; i++) {
        clock += 5_000;
        await watcher.check();
      }
      expect(hits.get('/refresh-down/issuing.crl')).toBe(2);
      clock += 60_000;
      await watcher.check();
      expect(hits.get('/refresh-down/issuing.crl')).toBe(3);
      // Back up: the next try takes the new CRL and the warning is gone.
      down.delete('/refresh-down/');
      files.issuing = pki.gencrl(pki.intermediate, join(dir, 'issuing-refresh.crl'), { der: true });
      clock += 61_000;
      await watcher.check();
      expect(hits.get('/refresh-down/issuing.crl')).toBe(4);
      expect(reloaded).toHaveLength(1);
      expect(registry.profiles.get('bank')?.findings.map((f) => f.code)).not.toContain('CRL_REFRESH_FAILED');
    } finally {
      down.delete('/refresh-down/');
    }
  });

  it('a CRL URL that was down at load, then answered a web page, is tried again once a minute, and the profile reloads once it serves the CRL', async () => {
    const url = `${base}/flaky/issuing.crl`;
    down.add('/flaky/');
    const { registry, watcher, reloaded } = await watched('flaky', [url, files.root as string]);
    expect(registry.profiles.get('bank')?.trust.crlsUnavailable).toEqual([{ url, message: expect.stringContaining('HTTP 503') as string }]);
    expect(hits.get('/flaky/issuing.crl')).toBe(1);
    // Within the minute: not tried again, whatever the watcher's interval.
    clock += 30_000;
    await watcher.check();
    expect(hits.get('/flaky/issuing.crl')).toBe(1);
    // A minute later a portal answers 200 with a web page: still unavailable (said so), the profile
    // still loaded, nothing reloaded.
    down.delete('/flaky/');
    portal.add('/flaky/');
    clock += 31_000;
    await watcher.check();
    expect(hits.get('/flaky/issuing.crl')).toBe(2);
    expect(reloaded).toEqual([]);
    expect(registry.profiles.get('bank')?.trust.crlsUnavailable).toEqual([{ url, message: expect.stringContaining('the answer is not a usable CRL: not a CRL') as string }]);
    expect([registry.problems, registry.staleProfiles()]).toEqual([[], []]);
    // Back up: the next retry loads it and the profile is reloaded with both CRLs.
    portal.delete('/flaky/');
    clock += 61_000;
    await watcher.check();
    expect(hits.get('/flaky/issuing.crl')).toBe(3);
    expect(reloaded).toHaveLength(1);
    const bank = registry.profiles.get('bank');
    expect(bank?.trust.crls?.map((c) => c.source)).toEqual([url, files.root]);
    expect(bank?.trust.crlsUnavailable).toBeUndefined();
    expect(bank?.findings.map((f) => f.code)).not.toContain('CRL_UNAVAILABLE');
  });
});

describe('calls use downloaded CRLs', () => {
  /** Load a profile naming `crl` and make one call to the revoked backend with it. */
  const callWith = async (crl: string[], mode: 'hard' | 'soft' = 'hard'): Promise<{ profile: Awaited<ReturnType<typeof loadProfile>>; result: Awaited<ReturnType<typeof invoke>> }> => {
    const file = join(dir, 'bank.json');
    writeFileSync(file, JSON.stringify({ trust: { ca: [pki.root.cert, pki.intermediate.cert], crl, revocation: { mode } } }));
    const profile = await loadProfile(file, { crlFetcher: new CrlFetcher() });
    const agents = new AgentPool();
    try {
      const result = await invoke({ id: 'crl-url', request: { method: 'GET', url: `https://localhost:${backend.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 } }, {}, profileDeps(new Map([['bank', profile]]), agents));
      return { profile, result };
    } finally {
      agents.destroy();
    }
  };

  it('a revoked server fails as server_cert_revoked, the hint naming the CRL URL', async () => {
    const issuingUrl = `${base}/call/issuing.crl`;
    const before = hits.get('/call/issuing.crl') ?? 0;
    const { result: r } = await callWith([issuingUrl, `${base}/call/root.crl`]);
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.hint).toContain(issuingUrl);
    expect(hits.get('/call/issuing.crl')).toBe(before + 1); // downloaded once, at load; nothing on the call path
  });

  it('an unreachable CRL URL is a CRL_UNAVAILABLE finding, and hard mode fails calls as revocation unknown naming the URL', async () => {
    const { profile, result: r } = await callWith([`${base}/missing/none.crl`, `${base}/call/root.crl`]);
    expect(profile.findings.find((f) => f.code === 'CRL_UNAVAILABLE')?.severity).toBe('error');
    expect(r.failure?.code, JSON.stringify(r.failure)).toBe('server_cert_revocation_unknown');
    // The hint names the CA without a CRL and the URL that could not be downloaded, not a CRL missing from trust.crl.
    expect(r.failure?.hint).toContain('no CRL of "CN=Bank Issuing CA" (issuer of "CN=localhost") is loaded');
    expect(r.failure?.hint).toContain(`${base}/missing/none.crl`);
    expect(r.failure?.hint).toContain('reachable');
    expect(r.failure?.hint).not.toContain('has no CRL');
  });

  it('every CRL URL unreachable: still revocation unknown naming the URLs, not a CA missing from trust.ca', async () => {
    const { result: r } = await callWith([`${base}/missing/a.crl`, `${base}/missing/b.crl`]);
    // Before: no CRL loaded meant OpenSSL checked nothing, and hard mode let every call through.
    expect(r.failure?.code, JSON.stringify(r.failure)).toBe('server_cert_revocation_unknown');
    expect(r.failure?.message).toContain('no CRL of profile "bank" could be had from its URLs');
    expect(r.failure?.hint).toContain(`${base}/missing/a.crl`);
    expect(r.failure?.hint).toContain(`${base}/missing/b.crl`);
  });

  it('soft mode, one CRL URL down and the other CRL loaded: the call goes through, its unknown verdict names the URL that failed', async () => {
    const down = `${base}/missing/gone.crl`;
    const { result: r } = await callWith([down, `${base}/call/root.crl`], 'soft');
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    const unknown = r.tls?.revocation?.find((c) => c.result === 'unknown');
    // (Also said of an answer that is no usable CRL, which "could not be downloaded" misnamed.)
    expect(unknown?.message).toContain(`the CRL at ${down} could not be had (unreachable, or its answer is not a usable CRL)`);
    expect(unknown?.message).not.toContain('no CRL of profile');
  });
});
