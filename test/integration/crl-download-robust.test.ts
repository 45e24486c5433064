/**
 * CRL downloads against hostile or broken sources: a server streaming far more than the size cap
 * (the download stops once the cap is passed, counted at the real HTTP server), a Content-Length
 * above the cap (refused before the body), and a corrupt shared copy in a real Redis (ignored,
 * replaced by a fresh download, reported as a stored-copy problem, never blamed on the URL).
 */
import { createHash, X509Certificate } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { CRL_FETCH_DEFAULTS, CrlFetcher } from '../../src/pki/crl-fetch.js';
import { RedisCrlStore } from '../../src/queue/redis-crl-store.js';
import { spawnCli } from '../helpers/cli.js';
import { listen, waitFor } from '../helpers/net.js';
import { createOpensslPki, type OpensslPki } from '../helpers/openssl-ca.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const MiB = 1024 * 1024;
/** What the streaming server is willing to send: eight times the cap. */
const STREAM_TOTAL = 8 * CRL_FETCH_DEFAULTS.maxBytes;

let dir: string;
let pki: OpensslPki;
let rootCrl: Buffer;
let server: http.Server;
let base: string;
let redis: TestRedis;
let client: Redis;
const hits = new Map<string, number>();
/** Per path: bytes the server managed to write, and whether the client hung up before the end. */
const sent = new Map<string, { bytes: number; closedEarly: boolean; done: boolean }>();

function stream(res: http.ServerResponse, path: string, withLength: boolean): void {
  const state = { bytes: 0, closedEarly: false, done: false };
  sent.set(path, state);
  res.writeHead(200, { 'content-type': 'application/pkix-crl', ...(withLength ? { 'content-length': String(STREAM_TOTAL) } : {}) });
  res.on('close', () => {
    if (state.bytes < STREAM_TOTAL) state.closedEarly = true;
    state.done = true;
  });
  const chunk = Buffer.alloc(MiB, 0x30);
  const pump = (): void => {
    while (state.bytes < STREAM_TOTAL && !res.destroyed) {
      state.bytes += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    if (!res.destroyed) res.end();
  };
  // With a Content-Length, the body starts late: a client that reads the header refuses before it.
  setTimeout(pump, withLength ? 200 : 0);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-crl-robust-'));
  pki = createOpensslPki(dir);
  rootCrl = readFileSync(pki.gencrl(pki.root, join(dir, 'root.crl'), { der: true }));
  server = http.createServer((req, res) => {
    const path = req.url ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path.endsWith('/big.crl')) return stream(res, path, false);
    if (path.endsWith('/declared.crl')) return stream(res, path, true);
    sent.set(path, { bytes: rootCrl.length, closedEarly: false, done: true });
    res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(rootCrl);
  });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
}, 30_000);

afterAll(async () => {
  client?.disconnect();
  await redis?.close();
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await rm(dir, { recursive: true, force: true });
});

const trust = (): X509Certificate[] => [new X509Certificate(readFileSync(pki.root.cert))];

async function loadError(fetcher: CrlFetcher, url: string): Promise<InvalidInputError> {
  const error = await fetcher.load(url, trust()).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(InvalidInputError);
  return error as InvalidInputError;
}

describe('size cap', () => {
  it('a body streaming past the cap is cut off soon after the cap, not read whole', async () => {
    const url = `${base}/a/big.crl`;
    const error = await loadError(new CrlFetcher(), url);
    expect(error.code).toBe('SVCNODE_CRL_UNAVAILABLE');
    expect(error.message).toContain(`larger than ${CRL_FETCH_DEFAULTS.maxBytes} bytes`);
    const state = await waitFor(() => (sent.get('/a/big.crl')?.done ? sent.get('/a/big.crl') : undefined), 10_000);
    expect(state.closedEarly).toBe(true);
    // The cap plus what socket buffers hold; reading it whole would have taken all STREAM_TOTAL.
    expect(state.bytes).toBeLessThan(CRL_FETCH_DEFAULTS.maxBytes + 16 * MiB);
  }, 30_000);

  it('a Content-Length above the cap is refused before the body is read', async () => {
    const url = `${base}/b/declared.crl`;
    const error = await loadError(new CrlFetcher(), url);
    expect(error.code).toBe('SVCNODE_CRL_UNAVAILABLE');
    expect(error.message).toContain(`(Content-Length ${STREAM_TOTAL})`);
    const state = await waitFor(() => (sent.get('/b/declared.crl')?.done ? sent.get('/b/declared.crl') : undefined), 10_000);
    expect(state.closedEarly).toBe(true);
    expect(state.bytes).toBeLessThan(8 * MiB);
  }, 30_000);
});

describe('shared copy in Redis', () => {
  /** The Redis key of a URL's shared copy, as an operator would find it. */
  const keyOf = (prefix: string, url: string): string => `${prefix}:crl:${createHash('sha256').update(url).digest('hex').slice(0, 32)}`;

  it('a corrupt shared copy is ignored, replaced by a fresh download, and reported as a stored-copy problem', async () => {
    const url = `${base}/corrupt/root.crl`;
    const first = await new CrlFetcher(new RedisCrlStore(client, 'corrupt')).load(url, trust());
    expect(first.storedCopyProblem).toBeUndefined();
    const key = keyOf('corrupt', url);
    await client.hset(key, { bytes: rootCrl.subarray(0, 100).toString('base64'), fetchedAt: String(Date.now()) });
    expect(hits.get('/corrupt/root.crl')).toBe(1);

    // A worker starting now: its profile loads with the URL's CRL and a warning about the copy.
    const file = join(dir, 'bank.json');
    writeFileSync(file, JSON.stringify({ trust: { ca: [pki.root.cert], crl: [url] } }));
    const profile = await loadProfile(file, { crlFetcher: new CrlFetcher(new RedisCrlStore(client, 'corrupt')) });
    expect(profile.trust.crls).toHaveLength(1);
    expect(profile.findings.filter((f) => f.severity === 'error')).toEqual([]);
    const warning = profile.findings.find((f) => f.code === 'CRL_STORED_COPY_INVALID');
    expect(warning?.severity).toBe('warning');
    expect(warning?.message).toContain('shared copy');
    expect(warning?.message).toContain('not a CRL');
    expect(warning?.hint).not.toContain('point trust.crl');
    expect(hits.get('/corrupt/root.crl')).toBe(2);

    // The fresh download replaced the corrupt copy: the next worker takes it without downloading.
    expect(Buffer.from(await client.hget(key, 'bytes') ?? '', 'base64').equals(rootCrl)).toBe(true);
    const next = await new CrlFetcher(new RedisCrlStore(client, 'corrupt')).load(url, trust());
    expect(next.storedCopyProblem).toBeUndefined();
    expect(hits.get('/corrupt/root.crl')).toBe(2);
    // A shared copy expires at its refresh point: a bad one cannot outlive it.
    const ttl = await client.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThan((first.crl.nextUpdate?.getTime() ?? Infinity) - Date.now());
  });

  it('a worker process starting after the copy was corrupted loads the profile and logs a stored-copy warning', async () => {
    const url = `${base}/worker/root.crl`;
    const profiles = join(dir, 'worker-profiles');
    const nodes = join(dir, 'worker-nodes');
    mkdirSync(profiles);
    mkdirSync(nodes);
    writeFileSync(join(profiles, 'bank.json'), JSON.stringify({ trust: { ca: [pki.root.cert], crl: [url] } }));
    // What `redis-cli hset` leaves: the first 100 bytes of the CRL, stamped now (no --prefix: `svcnode:crl:…`).
    await client.hset(keyOf('svcnode', url), { bytes: rootCrl.subarray(0, 100).toString('base64'), fetchedAt: String(Date.now()) });
    const worker = spawnCli(['worker', '--redis', redis.url, '--nodes', nodes, '--profiles', profiles, '--metrics-port', '0'], { env: { SVCNODE_LOG_LEVEL: 'info' } });
    try {
      await worker.waitForLine(/"queue":"service-node-invocations"/, { stream: 'stderr', timeoutMs: 20_000 });
      expect(worker.stderr()).toContain('CRL_STORED_COPY_INVALID');
      expect(worker.stderr()).not.toContain('SVCNODE_INVALID_CRL');
      expect(worker.stderr()).not.toContain('point trust.crl');
      expect(hits.get('/worker/root.crl')).toBe(1);
      expect(Buffer.from((await client.hget(keyOf('svcnode', url), 'bytes')) ?? '', 'base64').equals(rootCrl)).toBe(true);
    } finally {
      await worker.stop();
    }
  }, 30_000);

  it('a shared copy with a nonsense download time is not trusted', async () => {
    const url = `${base}/time/root.crl`;
    const key = keyOf('time', url);
    await client.hset(key, { bytes: rootCrl.toString('base64'), fetchedAt: 'soon' });
    const fetched = await new CrlFetcher(new RedisCrlStore(client, 'time')).load(url, trust());
    expect(fetched.storedCopyProblem).toContain('download time');
    expect(hits.get('/time/root.crl')).toBe(1);
    expect(Number(await client.hget(key, 'fetchedAt'))).toBe(fetched.fetchedAt);
  });
});
