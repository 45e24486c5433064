/**
 * Kept-alive connections the backend closes: an idle limit below the backend's (timeouts.keepAliveMs,
 * and the server's `Keep-Alive: timeout=N`), and a request whose pooled connection is closed
 * under it before any answer: sent again on another connection when that is safe, otherwise a
 * failure that says what happened. Real Node https backends with certificates minted here.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/definitions/registry.js';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { FailureStore } from '../../src/failures/store.js';
import { invoke, type InvokeDeps } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createProcessor } from '../../src/queue/processor.js';
import { AgentPool } from '../../src/tls/agents.js';
import type { IdleLearned } from '../../src/tls/idle-limit.js';
import { startRedis } from '../helpers/redis.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import type { MtlsServer } from '../helpers/servers.js';
import { startWorkerRig } from '../helpers/worker-rig.js';

const bank = useBankFixture();
/** A pool per test: the tests count the connections each one opens. */
let agents: AgentPool;
let deps: InvokeDeps;
beforeEach(() => {
  agents = new AgentPool();
  deps = { ...bank.deps, agents };
});
afterEach(() => agents.destroy());

/**
 * A backend that answers every request (after `delayMs`) but the `drop`-th (1-based), whose
 * connection it closes unanswered. `idleCloseMs`: it closes a connection idle that long without
 * having said so (no `Keep-Alive` header, as gunicorn and haproxy do). `dropAfterIdleMs`: a request
 * on a connection idle that long is dropped unanswered, as when the backend's idle close crosses it.
 */
async function backend(o: { drop?: number; keepAliveTimeoutMs?: number; delayMs?: number; idleCloseMs?: number; dropAfterIdleMs?: number } = {}): Promise<MtlsServer> {
  let seen = 0;
  const idleSince = new WeakMap<object, number>();
  const idleClose = new WeakMap<object, NodeJS.Timeout>();
  const server = await bank.serve({
    handler: async (req, res) => {
      seen++;
      clearTimeout(idleClose.get(req.socket));
      const since = idleSince.get(req.socket);
      if (seen === o.drop || (o.dropAfterIdleMs !== undefined && since !== undefined && performance.now() - since >= o.dropAfterIdleMs)) {
        req.socket.destroy();
        return;
      }
      if (o.delayMs) await sleep(o.delayMs);
      // An explicit Connection header keeps node:http from announcing (or applying) its keepAliveTimeout.
      res.writeHead(200, { 'content-type': 'application/json', ...(o.idleCloseMs === undefined ? {} : { connection: 'keep-alive' }) });
      res.end('{"ok":true}', () => {
        idleSince.set(req.socket, performance.now());
        if (o.idleCloseMs !== undefined) idleClose.set(req.socket, setTimeout(() => req.socket.destroy(), o.idleCloseMs));
      });
    },
  });
  if (o.keepAliveTimeoutMs !== undefined) server.server.keepAliveTimeout = o.keepAliveTimeoutMs;
  return server;
}

function node(server: MtlsServer, extra: Partial<NodeDefinition> = {}): NodeDefinition {
  return { id: 'kept-alive', request: { method: 'GET', url: `https://localhost:${server.port}/accounts/1` }, tls: { profile: 'bank' }, retry: { limit: 0 }, ...extra };
}

const post = (server: MtlsServer, extra: Partial<NodeDefinition> = {}): NodeDefinition => node(server, { request: { method: 'POST', url: `https://localhost:${server.port}/payments`, body: { amount: 1 } }, ...extra });

describe('a kept-alive connection closed under the request, before any answer', () => {
  it('GET: sent again at once on another connection, within the same attempt', async () => {
    const server = await backend({ drop: 2 });
    expect((await invoke(node(server), {}, deps)).ok).toBe(true);
    const r = await invoke(node(server), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.status).toBe(200);
    expect(r.attempts).toBe(1);
    expect(r.tls?.connectionReused).toBe(false);
    expect(server.requests).toBe(3);
    expect(server.connections).toBe(2);
    // The Result says the backend may have had it twice (before: nothing did; the first call was sent once).
    expect(r.request.resent).toBe(1);
  });

  it('the worker counts the request sent again in svcnode_connection_replays_total{node}, and its stored Result says so', async () => {
    const server = await backend({ drop: 2 });
    const redis = await startRedis();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const nodes = join(bank.pki.dir, 'replay-nodes');
      bank.pki.profile('bank');
      mkdirSync(nodes);
      writeFileSync(join(nodes, 'accounts.json'), JSON.stringify(node(server, { id: 'accounts' })));
      const registry = await Registry.load(nodes, bank.pki.profilesDir);
      const metrics = new Metrics();
      const processor = createProcessor({ registry: () => registry, agents, store: new FailureStore(connection), metrics, logger: createLogger({ level: 'silent' }) });
      const job = (id: string): Job => ({ id, name: 'invoke', data: { nodeId: 'accounts', context: {} }, progress: 0 }) as unknown as Job;
      const results: Result[] = [await processor(job('1')), await processor(job('2'))];
      expect(results.map((r) => r.ok)).toEqual([true, true]);
      expect(results.map((r) => r.request.resent)).toEqual([undefined, 1]);
      expect(await metrics.registry.metrics()).toContain('svcnode_connection_replays_total{node="accounts"} 1');
    } finally {
      connection.disconnect();
      await redis.close();
    }
  });

  it('POST: not sent again (the backend may have it); the failure says what happened and what to set', async () => {
    const server = await backend({ drop: 2 });
    expect((await invoke(post(server), {}, deps)).ok).toBe(true);
    const r = await invoke(post(server), {}, deps);
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ category: 'connect_failed', phase: 'request', code: 'ECONNRESET' });
    expect(r.failure?.message).toBe(`localhost:${server.port}: the backend closed a kept-alive connection without answering (it had answered 1 request on it)`);
    expect(r.failure?.hint).toContain('timeouts.keepAliveMs');
    expect(r.failure?.hint).toContain('retry.nonIdempotent');
    expect(r.tls?.connectionReused).toBe(true);
    expect(server.requests).toBe(2);
  });

  it('POST with retry.nonIdempotent: sent again on another connection', async () => {
    const server = await backend({ drop: 2 });
    const n = post(server, { retry: { limit: 0, nonIdempotent: true } });
    expect((await invoke(n, {}, deps)).ok).toBe(true);
    const r = await invoke(n, {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(server.requests).toBe(3);
  });

  it('a fresh connection closed unanswered is not sent again and keeps its own verdict', async () => {
    const server = await backend({ drop: 1 });
    const r = await invoke(node(server), {}, deps);
    // A TLS 1.3 close right after the handshake is the classifier's call (a certificate verdict or not).
    expect(r.ok).toBe(false);
    expect(r.failure?.message).not.toContain('kept-alive');
    expect(server.requests).toBe(1);
  });
});

describe('idle limit of pooled connections', () => {
  it('timeouts.keepAliveMs: a connection unused for longer is closed, the next call opens another', async () => {
    const server = await backend();
    const short = node(server, { timeouts: { keepAliveMs: 300 } });
    expect((await invoke(short, {}, deps)).ok).toBe(true);
    await sleep(700);
    const r = await invoke(short, {}, deps);
    expect(r.ok).toBe(true);
    expect(r.tls?.connectionReused).toBe(false);
    expect(server.connections).toBe(2);
  });

  it('the limit bounds idle time only: a response slower than keepAliveMs still arrives on a kept-alive connection', async () => {
    const server = await backend({ delayMs: 800 });
    const slow = node(server, { timeouts: { keepAliveMs: 200, responseMs: 3_000, totalMs: 5_000 } });
    expect((await invoke(slow, {}, deps)).ok).toBe(true);
    const r = await invoke(slow, {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.connectionReused).toBe(true);
    expect(server.connections).toBe(1);
  });

  it('within the limit the connection is reused', async () => {
    const server = await backend();
    const n = node(server, { timeouts: { keepAliveMs: 3_000 } });
    expect((await invoke(n, {}, deps)).ok).toBe(true);
    await sleep(700);
    expect((await invoke(n, {}, deps)).tls?.connectionReused).toBe(true);
    expect(server.connections).toBe(1);
  });

  it("the server's Keep-Alive: timeout=2 closes it 1 s before the server would", async () => {
    const server = await backend({ keepAliveTimeoutMs: 2_000 });
    expect((await invoke(node(server), {}, deps)).ok).toBe(true);
    await sleep(300);
    expect((await invoke(node(server), {}, deps)).tls?.connectionReused).toBe(true);
    await sleep(1_300);
    const r = await invoke(node(server), {}, deps);
    expect(r.ok).toBe(true);
    expect(r.tls?.connectionReused).toBe(false);
    expect(server.connections).toBe(2);
  });

  it('Keep-Alive: timeout=1 leaves no time to reuse: each call opens its own connection', async () => {
    const server = await backend({ keepAliveTimeoutMs: 1_000 });
    expect((await invoke(node(server), {}, deps)).ok).toBe(true);
    const r = await invoke(node(server), {}, deps);
    expect(r.ok).toBe(true);
    expect(r.tls?.connectionReused).toBe(false);
    expect(server.connections).toBe(2);
  });
});

describe('the idle limit learns a backend that closes idle connections sooner without saying so', () => {
  const learning = (): { pool: AgentPool; learned: IdleLearned[] } => {
    const learned: IdleLearned[] = [];
    agents.destroy();
    agents = new AgentPool({ onIdleLearned: (l) => learned.push(l) });
    deps = { ...bank.deps, agents };
    return { pool: agents, learned };
  };

  it('a connection the backend closed after 1.5 s idle: the next ones close after 3/4 of that, before the backend would', async () => {
    const { learned } = learning();
    const server = await backend({ idleCloseMs: 1_500 });
    expect((await invoke(node(server), {}, deps)).ok).toBe(true);
    await sleep(2_000);
    expect((await invoke(node(server), {}, deps)).tls?.connectionReused).toBe(false);
    expect(learned).toHaveLength(1);
    expect(learned[0]).toMatchObject({ origin: `https://localhost:${server.port}`, profile: 'bank', configuredMs: 4_000 });
    expect(learned[0]?.idleMs).toBeGreaterThanOrEqual(1_400);
    expect(learned[0]?.idleMs).toBeLessThan(2_000);
    expect(learned[0]?.limitMs).toBe(Math.floor((learned[0]?.idleMs ?? 0) * 0.75));
    // 1.3 s idle: within the backend's 1.5 s, past the learned limit: svcnode closed it first.
    await sleep(1_300);
    const r = await invoke(node(server), {}, deps);
    expect(r.ok).toBe(true);
    expect(r.tls?.connectionReused).toBe(false);
    expect(server.connections).toBe(3);
    // Within the learned limit the connection is still reused.
    await sleep(300);
    expect((await invoke(node(server), {}, deps)).tls?.connectionReused).toBe(true);
  });

  it('a POST whose kept-alive connection closed under it fails once; the next one after the same idle time gets a new connection', async () => {
    const { learned } = learning();
    const server = await backend({ dropAfterIdleMs: 1_000 });
    expect((await invoke(post(server), {}, deps)).ok).toBe(true);
    await sleep(1_600);
    const failed = await invoke(post(server), {}, deps);
    expect(failed.failure?.message).toContain('closed a kept-alive connection without answering');
    expect(learned.map((l) => l.idleMs >= 1_500 && l.idleMs < 2_500)).toEqual([true]);
    expect((await invoke(post(server), {}, deps)).ok).toBe(true);
    await sleep(1_600);
    const r = await invoke(post(server), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.connectionReused).toBe(false);
  });

  it('closes sooner than 1 s after the last answer teach nothing (a restart, a request limit per connection)', async () => {
    const { learned } = learning();
    const server = await backend({ idleCloseMs: 600 });
    expect((await invoke(node(server), {}, deps)).ok).toBe(true);
    await sleep(900);
    expect((await invoke(node(server), {}, deps)).tls?.connectionReused).toBe(false);
    await sleep(500);
    expect((await invoke(node(server), {}, deps)).tls?.connectionReused).toBe(true);
    expect(learned).toEqual([]);
  });
});

describe('the worker logs what its pools learned', () => {
  it('once, with origin, profile and the limits (a backend closing idle connections after 1.5 s)', async () => {
    const logs: Record<string, unknown>[] = [];
    const rig = await startWorkerRig({ dirPrefix: 'svcnode-idle-learn-', worker: { logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) } });
    try {
      // No Keep-Alive header and no idle close of node:http's own: this backend closes after 1.5 s idle, silently.
      rig.backend.server.keepAliveTimeout = 0;
      const idleClose = new WeakMap<object, NodeJS.Timeout>();
      rig.backend.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        clearTimeout(idleClose.get(req.socket));
        res.once('finish', () => idleClose.set(req.socket, setTimeout(() => req.socket.destroy(), 1_500)));
      });
      expect((await rig.client.invoke('ping', {}, { timeoutMs: 10_000 })).ok).toBe(true);
      await sleep(2_000);
      expect((await rig.client.invoke('ping', {}, { timeoutMs: 10_000 })).ok).toBe(true);
      const learned = logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('the backend closes idle connections sooner'));
      expect(learned).toEqual([expect.objectContaining({ origin: `https://localhost:${rig.backend.port}`, profile: 'bank', configuredMs: 4_000 })]);
      expect(learned[0]?.limitMs).toBe(Math.floor(Number(learned[0]?.idleMs) * 0.75));
    } finally {
      await rig.close();
    }
  });
});
