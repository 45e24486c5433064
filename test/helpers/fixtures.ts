/**
 * Queue and worker fixtures: a nodes dir and a profiles dir for a test PKI and local backends,
 * a backend that answers without echoing request headers, `svcnode worker` processes, and a
 * dump of everything a Redis holds (for secret scans).
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { mintCa, mintLeaf, type MintedCert } from '../../src/pki/mint.js';
import { startWorker, type RunningWorker, type WorkerOptions } from '../../src/queue/worker.js';
import { spawnCli, type CliProcess } from './cli.js';
import type { TestPki } from './pki.js';
import { startMtlsServer, type MtlsServer } from './servers.js';

/** Environment variable that holds the passphrase of the `bank` profile's encrypted key. */
export const PASSPHRASE_ENV = 'SVCNODE_TEST_BANK_KEY_PASS';

export interface QueueFixtures {
  dir: string;
  nodesDir: string;
  profilesDir: string;
  /** Passphrase of the encrypted client key of profile `bank` (random per fixture). */
  passphrase: string;
  /** Environment a worker needs: `{ [PASSPHRASE_ENV]: passphrase }`. */
  env: Record<string, string>;
  /** Client certificate from a CA no backend trusts (profile `rogue`). */
  rogue: MintedCert;
  /** Write `nodesDir/<id>.json`; returns the path. */
  writeNode(def: NodeDefinition): string;
  /** Write a raw file into nodesDir (e.g. a broken definition); returns the path. */
  writeNodeFile(name: string, text: string): string;
  /** Write `profilesDir/<name>.json` (a document or raw text); returns the path. */
  writeProfile(name: string, doc: ProfileDocument | string): string;
  cleanup(): Promise<void>;
}

/**
 * Profiles written:
 * - `bank`: the PKI's client chain, its key encrypted (PKCS#8, AES-256) with a passphrase from
 *   `PASSPHRASE_ENV`, trust = the PKI root;
 * - `rogue`: a client certificate from an untrusted CA (backends reject it), trust = the PKI root.
 */
export async function createQueueFixtures(pki: TestPki, nodes: NodeDefinition[] = []): Promise<QueueFixtures> {
  const dir = mkdtempSync(join(tmpdir(), 'svcnode-fixtures-'));
  const nodesDir = join(dir, 'nodes');
  const profilesDir = join(dir, 'profiles');
  const material = join(dir, 'material');
  for (const d of [nodesDir, profilesDir, material]) mkdirSync(d);
  const file = (name: string, text: string): string => {
    const path = join(material, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };

  const passphrase = `pass-${randomBytes(9).toString('hex')}`;
  const encryptedKey = createPrivateKey(pki.client.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
  const rogueCa = await mintCa({ subject: 'CN=Rogue CA,O=svcnode tests' });
  const rogue = await mintLeaf({ subject: 'CN=rogue-bot,O=svcnode tests', issuer: rogueCa, usage: 'client' });
  const root = file('root.pem', pki.root.certPem);

  const writeProfile = (name: string, doc: ProfileDocument | string): string => {
    const path = join(profilesDir, `${name}.json`);
    writeFileSync(path, typeof doc === 'string' ? doc : `${JSON.stringify({ name, ...doc }, null, 2)}\n`);
    return path;
  };
  writeProfile('bank', {
    client: { certificate: file('bank-chain.pem', pki.client.certPem + pki.intermediate.certPem), key: file('bank.key', encryptedKey), passphrase: { env: PASSPHRASE_ENV } },
    trust: { ca: [root] },
  });
  writeProfile('rogue', { client: { certificate: file('rogue.pem', rogue.certPem), key: file('rogue.key', rogue.keyPem) }, trust: { ca: [root] } });

  const writeNodeFile = (name: string, text: string): string => {
    const path = join(nodesDir, name);
    writeFileSync(path, text);
    return path;
  };
  const writeNode = (def: NodeDefinition): string => writeNodeFile(`${def.id}.json`, `${JSON.stringify(def, null, 2)}\n`);
  for (const n of nodes) writeNode(n);

  return {
    dir,
    nodesDir,
    profilesDir,
    passphrase,
    env: { [PASSPHRASE_ENV]: passphrase },
    rogue,
    writeNode,
    writeNodeFile,
    writeProfile,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A node definition with test-friendly defaults: one quick retry, short connect timeout. */
export function nodeDef(id: string, url: string, profile = 'bank', extra: Partial<NodeDefinition> = {}): NodeDefinition {
  return {
    id,
    request: { method: 'GET', url },
    tls: { profile },
    retry: { limit: 1, backoffMs: 100 },
    timeouts: { connectMs: 2_000 },
    ...extra,
  };
}

export interface BackendOptions {
  /** Delay before answering. @defaultValue 0 */
  delayMs?: number;
  /** `Connection: close`: every request needs a new handshake (exact handshake counts). */
  closeAfterEachResponse?: boolean;
}

/**
 * An mTLS backend for the PKI's server certificate that trusts the PKI root and answers
 * `{ ok: true, path }`, never echoing request headers (so a Result cannot carry them).
 */
export function startBackend(pki: TestPki, o: BackendOptions = {}): Promise<MtlsServer> {
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    req.resume();
    if (o.delayMs) await sleep(o.delayMs);
    const body = JSON.stringify({ ok: true, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  return startMtlsServer({
    key: pki.server.keyPem,
    cert: pki.server.certPem + pki.intermediate.certPem,
    ca: pki.root.certPem,
    handler,
    ...(o.closeAfterEachResponse ? { closeAfterEachResponse: true } : {}),
  });
}

/** A backend whose answers wait until the test opens the gate (to act on Redis while calls are in flight). */
export interface GatedBackend {
  server: MtlsServer;
  /** Paths of the requests received so far, answered or not. */
  arrived: string[];
  /** Answer the requests waiting and every later one at once. */
  open(): void;
}

/** startBackend's answer, held back until `open()`. */
export async function startGatedBackend(pki: TestPki): Promise<GatedBackend> {
  const arrived: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const server = await startMtlsServer({
    key: pki.server.keyPem,
    cert: pki.server.certPem + pki.intermediate.certPem,
    ca: pki.root.certPem,
    handler: async (req, res) => {
      req.resume();
      arrived.push(req.url ?? '');
      await gate;
      const body = JSON.stringify({ ok: true, path: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
  });
  return { server, arrived, open };
}

export interface WorkerProcess {
  proc: CliProcess;
  /** Port of /metrics and /healthz. */
  metricsPort: number;
  /** pino JSON log lines (stderr) parsed so far. */
  logs(): Array<Record<string, unknown>>;
}

/**
 * Spawns `svcnode worker` (the built CLI) with `--metrics-port 0` and resolves once it logged
 * that it is consuming the queue, with the metrics port it bound.
 */
export async function spawnWorker(
  f: QueueFixtures,
  redisUrl: string,
  o: { concurrency?: number; lockDurationMs?: number; stalledIntervalMs?: number; extraArgs?: string[] } = {},
): Promise<WorkerProcess> {
  const args = ['worker', '--redis', redisUrl, '--nodes', f.nodesDir, '--profiles', f.profilesDir, '--metrics-port', '0', '--concurrency', String(o.concurrency ?? 4)];
  if (o.lockDurationMs) args.push('--lock-duration-ms', String(o.lockDurationMs));
  if (o.stalledIntervalMs) args.push('--stalled-interval-ms', String(o.stalledIntervalMs));
  args.push(...(o.extraArgs ?? []));
  const proc = spawnCli(args, { env: { ...f.env, SVCNODE_LOG_LEVEL: 'info' }, timeoutMs: 170_000 });
  const logs = (): Array<Record<string, unknown>> =>
    proc.lines
      .filter((l) => l.stream === 'stderr' && l.text.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l.text) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  try {
    await proc.waitForLine(/"queue":"service-node-invocations"/, { stream: 'stderr', timeoutMs: 20_000 });
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  const started = logs().find((l) => l.queue === 'service-node-invocations' && typeof l.metricsPort === 'number');
  if (!started) {
    await proc.stop('SIGKILL');
    throw new Error('worker start line has no metricsPort');
  }
  return { proc, metricsPort: started.metricsPort as number, logs };
}

/** Sum of `svcnode_invocations_total` samples with these labels on a worker's /metrics. */
export async function invocationsMetric(metricsPort: number, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^svcnode_invocations_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const got = new Map<string, string>();
    for (const x of (m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)) got.set(x[1] ?? '', x[2] ?? '');
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) sum += Number(m[2]);
  }
  return sum;
}

/**
 * Every key in the Redis at `url` with its type-appropriate contents (strings, hashes, lists,
 * sets, sorted sets with scores, streams), as one text for `assertNoSecrets`.
 */
export async function dumpRedis(url: string): Promise<{ keys: string[]; text: string }> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const keys = (await redis.keys('*')).sort();
    const parts: string[] = [];
    for (const key of keys) {
      const type = await redis.type(key);
      let value: unknown;
      switch (type) {
        case 'string':
          value = await redis.get(key);
          break;
        case 'hash':
          value = await redis.hgetall(key);
          break;
        case 'list':
          value = await redis.lrange(key, 0, -1);
          break;
        case 'set':
          value = await redis.smembers(key);
          break;
        case 'zset':
          value = await redis.zrange(key, 0, '-1', 'WITHSCORES');
          break;
        case 'stream':
          value = await redis.xrange(key, '-', '+');
          break;
        default:
          value = `(${type})`;
      }
      // Raw strings as stored (a secret inside a JSON value is found either way by assertNoSecrets).
      parts.push(`${key} ${type} ${JSON.stringify(value)}`, typeof value === 'string' ? value : flatten(value));
    }
    return { keys, text: parts.join('\n') };
  } finally {
    redis.disconnect();
  }
}

function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(flatten).join('\n');
  if (value && typeof value === 'object') return Object.entries(value).map(([k, v]) => `${k}\n${flatten(v)}`).join('\n');
  return String(value);
}

/** An in-process worker on the fixtures' nodes and profiles, no reloads, whose log lines (info and up) land in `logs`. */
export function startLoggedWorker(f: QueueFixtures, redisUrl: string, logs: Record<string, unknown>[], extra: Partial<WorkerOptions> = {}): Promise<RunningWorker> {
  return startWorker({
    redisUrl,
    nodesDir: f.nodesDir,
    profilesDir: f.profilesDir,
    reloadIntervalMs: 0,
    env: { ...process.env, ...f.env },
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
    ...extra,
  });
}
