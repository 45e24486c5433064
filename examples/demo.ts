/**
 * `npm run demo`: the main job end to end on one machine. Mints a throwaway PKI, starts a local
 * mTLS backend and a local Redis on free ports, runs a worker, enqueues invocations to a good
 * node and to nodes that fail in different ways, prints the Results and the per-node failure
 * table, and cleans up. Its keys live under a random prefix of its own, removed at the end (an
 * interrupt or a failure included), so a Redis given by REDIS_URL shares no job with its workers.
 */
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintCa, mintLeaf } from '../src/pki/mint.js';
import { ServiceNodeClient } from '../src/queue/client.js';
import { startWorker } from '../src/queue/worker.js';
import { createLogger } from '../src/observability/logger.js';
import { formatResult } from '../src/cli/report.js';
import { redactRedisUrl } from '../src/queue/connection.js';
import { closingLine, unexpectedLine, type Expected } from './demo-expectations.js';
import { demoPrefix, removeDemoKeys } from './demo-keys.js';

const DAY = 86_400_000;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startRedis(dir: string): Promise<{ url: string; process: ChildProcess | undefined }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, process: undefined };
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', dir], { stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) => child.once('error', () => reject(new Error('redis-server not found: install it (apt-get install -y redis-server) or set REDIS_URL'))));
  failed.catch(() => undefined);
  for (let i = 0; i < 100; i++) {
    const up = await Promise.race([
      failed,
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    ]);
    if (up) return { url: `redis://127.0.0.1:${port}`, process: child };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

function listen(server: https.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** SIGINT or SIGTERM: the demo stops waiting and cleans up (its keys in a shared Redis first of all). */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`${signal}: stopping the demo`);
  }
}

async function main(signal: AbortSignal): Promise<void> {
  const interrupted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('interrupted')), { once: true }));
  interrupted.catch(() => undefined);
  /** Waits for `work`, or rejects at once on an interrupt. */
  const step = <T>(work: Promise<T>): Promise<T> => Promise.race([work, interrupted]);
  const dir = await mkdtemp(join(tmpdir(), 'svcnode-demo-'));
  const nodesDir = join(dir, 'nodes');
  const profilesDir = join(dir, 'profiles');
  await Promise.all([mkdir(nodesDir), mkdir(profilesDir)]);
  const cleanups: (() => Promise<unknown> | void)[] = [() => rm(dir, { recursive: true, force: true })];
  try {
    console.log('1. minting a throwaway PKI (root → intermediate → server and client certificates)');
    const root = await mintCa({ subject: 'CN=Demo Bank Root CA,O=Demo Bank' });
    const intermediate = await mintCa({ subject: 'CN=Demo Bank Issuing CA,O=Demo Bank', issuer: root, pathLength: 0 });
    const server = await mintLeaf({ subject: 'CN=localhost,O=Demo Bank', issuer: intermediate, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const expiredServer = await mintLeaf({ subject: 'CN=localhost,O=Demo Bank (expired)', issuer: intermediate, usage: 'server', dnsNames: ['localhost'], notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - 30 * DAY) });
    const bot = await mintLeaf({ subject: 'CN=svcnode-demo-bot,O=Demo Platform', issuer: intermediate, usage: 'client' });
    const rogueCa = await mintCa({ subject: 'CN=Unknown CA' });
    const rogue = await mintLeaf({ subject: 'CN=rogue-bot', issuer: rogueCa, usage: 'client' });
    const files: Record<string, string> = {
      'root.pem': root.certPem,
      'bot-chain.pem': bot.certPem + intermediate.certPem,
      'bot.key': bot.keyPem,
      'rogue.pem': rogue.certPem,
      'rogue.key': rogue.keyPem,
    };
    for (const [name, content] of Object.entries(files)) await writeFile(join(profilesDir, name), content, { mode: 0o600 });
    await writeFile(join(profilesDir, 'bank.json'), JSON.stringify({ name: 'bank', client: { certificate: 'bot-chain.pem', key: 'bot.key' }, trust: { ca: ['root.pem'] } }, null, 2));
    await writeFile(join(profilesDir, 'rogue.json'), JSON.stringify({ name: 'rogue', client: { certificate: 'rogue.pem', key: 'rogue.key' }, trust: { ca: ['root.pem'] } }, null, 2));

    console.log('2. starting local mTLS backends and Redis');
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accountId: req.url?.split('/').pop(), balance: '1234.56', seenClient: peer.subject?.CN }));
    };
    const tlsOptions = { ca: root.certPem, requestCert: true, rejectUnauthorized: true };
    const backend = https.createServer({ ...tlsOptions, key: server.keyPem, cert: server.certPem + intermediate.certPem }, handler);
    const expiredBackend = https.createServer({ ...tlsOptions, key: expiredServer.keyPem, cert: expiredServer.certPem + intermediate.certPem }, handler);
    const [port, expiredPort, closedPort] = await Promise.all([listen(backend), listen(expiredBackend), freePort()]);
    cleanups.push(() => {
      backend.closeAllConnections();
      expiredBackend.closeAllConnections();
      backend.close();
      expiredBackend.close();
    });
    // Cleanups wait for what is still starting: an interrupt must not leave a redis-server or a worker behind.
    const redisStart = startRedis(dir);
    cleanups.push(async () => void (await redisStart.catch(() => undefined))?.process?.kill('SIGTERM'));
    const redis = await step(redisStart);
    // Never the fleet's queue: workers on a shared Redis would take the demo's jobs and the demo's worker theirs.
    const prefix = demoPrefix(redis.url);
    cleanups.push(async () => {
      try {
        const removed = await removeDemoKeys(redis.url, prefix);
        if (!redis.process) console.log(`removed the demo's ${removed} keys (${prefix}:*) from ${redactRedisUrl(redis.url)}`);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        console.error(`could not remove the demo's keys, if it wrote any (${prefix}:*), from ${redactRedisUrl(redis.url)}: ${why}\nonce Redis answers: redis-cli --scan --pattern '${prefix}:*' | xargs redis-cli unlink`);
        process.exitCode = 1;
      }
    });

    const node = (id: string, url: string, profile: string, extra: object = {}) => ({ id, request: { method: 'GET', url }, tls: { profile }, retry: { limit: 1, backoffMs: 200 }, timeouts: { connectMs: 2000 }, ...extra });
    const nodes = [
      node('get-account', `https://localhost:${port}/accounts/{{context.accountId}}`, 'bank'),
      node('expired-backend', `https://localhost:${expiredPort}/accounts/{{context.accountId}}`, 'bank'),
      node('unregistered-bot', `https://localhost:${port}/accounts/{{context.accountId}}`, 'rogue'),
      node('backend-down', `https://localhost:${closedPort}/accounts/{{context.accountId}}`, 'bank'),
    ];
    for (const n of nodes) await writeFile(join(nodesDir, `${n.id}.json`), JSON.stringify(n, null, 2));

    console.log(`3. starting a worker (Redis ${redactRedisUrl(redis.url)}, key prefix ${prefix})`);
    const workerStart = startWorker({ redisUrl: redis.url, prefix, nodesDir, profilesDir, logger: createLogger({ level: 'error' }), concurrency: 8, signal });
    cleanups.push(async () => (await workerStart.catch(() => undefined))?.close(5000));
    await step(workerStart);
    const client = new ServiceNodeClient({ redisUrl: redis.url, prefix });
    cleanups.push(() => client.close());

    console.log('4. enqueueing invocations\n');
    const runs: [string, Record<string, string>, Expected][] = [
      ['get-account', { accountId: '42' }, null],
      ['get-account', { accountId: '43' }, null],
      ['expired-backend', { accountId: '42' }, 'server_cert_expired'],
      ['unregistered-bot', { accountId: '42' }, 'client_cert_rejected'],
      ['backend-down', { accountId: '42' }, 'connect_failed'],
    ];
    const results = await step(Promise.all(runs.map(([id, ctx]) => client.invoke(id, { ...ctx }, { timeoutMs: 30_000 }))));
    results.forEach((result, i) => {
      const unexpected = unexpectedLine(result, runs[i]?.[2] ?? null);
      console.log(`${formatResult(result)}${unexpected ? `${unexpected}\n` : ''}`);
    });

    console.log('5. per-node handshake and failure records (svcnode failures)\n');
    const summary = await step(client.failures());
    for (const n of summary.nodes) {
      const counts = Object.entries(n.counts).map(([k, v]) => `${k}=${v}`).join(' ');
      console.log(`${n.nodeId.padEnd(18)} ${counts}${n.lastFailure ? `\n${' '.repeat(19)}last: ${n.lastFailure.category}: ${n.lastFailure.hint}` : ''}`);
    }
    const closing = closingLine(results, runs.map(([, , expected]) => expected));
    console.log(`\n${closing.line}`);
    if (!closing.asExpected) process.exitCode = 1;
  } catch (error) {
    if (!(error instanceof Interrupted)) throw error;
    console.error(error.message);
  } finally {
    // Each step runs even when one before it fails: the keys must go whatever else went wrong.
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error(`cleanup: ${error instanceof Error ? error.message : String(error)}`);
        process.exitCode ??= 1;
      }
    }
  }
}

const stop = new AbortController();
const onSignal = (signal: NodeJS.Signals): void => {
  process.exitCode = signal === 'SIGINT' ? 130 : 143;
  stop.abort(new Interrupted(signal));
};
process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
try {
  await main(stop.signal);
} finally {
  process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
}
