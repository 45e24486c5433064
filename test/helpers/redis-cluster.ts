/**
 * Throwaway Redis Cluster (masters + replicas) and Sentinel groups built from real redis-server
 * processes, for failover tests: SIGKILL a master and watch a replica take over.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { Queue, type Job } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { LOOPBACK, waitFor } from './net.js';
import { startRedis, type TestRedis } from './redis.js';

const run = promisify(execFile);

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, LOOPBACK, () => server.close(() => resolve(true)));
  });
}

/** A port below 55535 whose cluster bus port (port + 10000) is free too. */
export async function clusterPort(taken: Set<number> = new Set()): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await portFree(port)) && (await portFree(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
}

/** Redis Cluster's slot of a key (CRC16/XMODEM of the hash tag or the whole key, mod 16384). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const tagged = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(tagged)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16_384;
}

export interface TestCluster {
  nodes: TestRedis[];
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…` */
  url: string;
  /** Seed list for an ioredis Cluster. */
  seeds: { host: string; port: number }[];
  /** The node that currently serves `slot` as master (asks a live node). */
  masterOf(slot: number): Promise<TestRedis>;
  /** The replicas of a master, by its node id. */
  replicasOf(master: TestRedis): Promise<TestRedis[]>;
  /** Wait until every live node reports cluster_state:ok and agrees on `slot`'s master. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Open a migration of `slot` from its master to `target`, the steps of `redis-cli --cluster reshard`. */
  migrateSlot(slot: number, target: TestRedis): Promise<SlotMigration>;
  close(): Promise<void>;
}

/** A slot between IMPORTING/MIGRATING and SETSLOT NODE: multi-key commands on it get TRYAGAIN meanwhile. */
export interface SlotMigration {
  /** MIGRATE up to `count` keys, `batch` per command, pausing `pauseMs` between commands; resolves with the number moved. */
  move(count: number, o?: { batch?: number; pauseMs?: number }): Promise<number>;
  /** Give the slot to the target on every node (SETSLOT NODE) and close the migration's connections. */
  finish(): Promise<void>;
  /** Close the migration's connections and leave the slot open. */
  abandon(): void;
}

async function cmd(port: number, ...args: (string | number)[]): Promise<string> {
  return cmdAs(undefined, port, ...args);
}

async function cmdAs(password: string | undefined, port: number, ...args: (string | number)[]): Promise<string> {
  const r = new Redis({ host: LOOPBACK, port, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 1_000, retryStrategy: () => null, ...(password ? { password } : {}) });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return String(await r.call(String(args[0]), ...args.slice(1).map(String)));
  } finally {
    r.disconnect();
  }
}

export interface ClusterOptions {
  /** Every node's `requirepass` and `masterauth`; the URL and seeds carry none. */
  password?: string;
  /** `cluster-node-timeout`: how long a master must be unreachable before its replica takes over. @defaultValue 1000 (Redis's own default is 15000) */
  nodeTimeoutMs?: number;
}

/** `masters` masters with `replicasPerMaster` replicas each; fast failover (node timeout 1 s) unless `o.nodeTimeoutMs` says otherwise. */
export async function startCluster(masters = 3, replicasPerMaster = 1, o: ClusterOptions = {}): Promise<TestCluster> {
  const auth = o.password ? ['--requirepass', o.password, '--masterauth', o.password] : [];
  const ask = (port: number, ...args: (string | number)[]): Promise<string> => cmdAs(o.password, port, ...args);
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < masters * (1 + replicasPerMaster); i++) ports.push(await clusterPort(taken));
  const nodes = await Promise.all(
    ports.map((port) =>
      startRedis({ port, appendonly: true, args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(o.nodeTimeoutMs ?? 1000), '--cluster-replica-validity-factor', '0', ...auth] }),
    ),
  );
  const cluster: TestCluster = {
    nodes,
    url: `redis+cluster://${ports.map((p) => `${LOOPBACK}:${p}`).join(',')}`,
    seeds: ports.map((port) => ({ host: LOOPBACK, port })),
    async masterOf(slot) {
      for (const node of nodes) {
        try {
          const slots = JSON.parse(JSON.stringify(await clusterSlots(node.port, o.password))) as [number, number, [string, number]][];
          const range = slots.find(([from, to]) => slot >= from && slot <= to);
          const owner = nodes.find((n) => n.port === range?.[2][1]);
          if (owner) return owner;
        } catch {
          // a dead node: ask the next one
        }
      }
      throw new Error(`no live node knows the master of slot ${slot}`);
    },
    async replicasOf(master) {
      const id = await ask(master.port, 'CLUSTER', 'MYID');
      const lines = (await ask(master.port, 'CLUSTER', 'NODES')).split('\n').filter((l) => l.includes(`slave ${id}`) || l.split(' ')[3] === id);
      return lines.map((l) => Number(/:(\d+)@/.exec(l)?.[1])).flatMap((p) => nodes.filter((n) => n.port === p));
    },
    async waitHealthy(timeoutMs = 30_000) {
      await waitFor(
        async () => {
          for (const node of nodes) {
            const info = await ask(node.port, 'CLUSTER', 'INFO').catch(() => 'dead');
            if (info !== 'dead' && !info.includes('cluster_state:ok')) return false;
          }
          return true;
        },
        timeoutMs,
        100,
        'cluster_state:ok on every live node',
      );
    },
    async migrateSlot(slot, target) {
      const source = await cluster.masterOf(slot);
      const connect = (port: number): Redis => new Redis({ host: LOOPBACK, port, maxRetriesPerRequest: 1, ...(o.password ? { password: o.password } : {}) });
      const [from, to] = [connect(source.port), connect(target.port)];
      const [fromId, toId] = [String(await from.call('CLUSTER', 'MYID')), String(await to.call('CLUSTER', 'MYID'))];
      await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
      await from.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
      const abandon = (): void => {
        from.disconnect();
        to.disconnect();
      };
      return {
        async move(count, mo = {}) {
          let moved = 0;
          while (moved < count) {
            const keys = (await from.call('CLUSTER', 'GETKEYSINSLOT', slot, Math.min(mo.batch ?? 10, count - moved))) as string[];
            if (keys.length === 0) break;
            await from.call('MIGRATE', LOOPBACK, target.port, '', 0, 5_000, ...(o.password ? ['AUTH', o.password] : []), 'KEYS', ...keys);
            moved += keys.length;
            if (mo.pauseMs) await new Promise((resolve) => setTimeout(resolve, mo.pauseMs));
          }
          return moved;
        },
        async finish() {
          try {
            // Target first, then source, as redis-cli does: no node sends MOVED to one that would send it back.
            for (const node of [target, source, ...nodes.filter((n) => n !== target && n !== source)]) await ask(node.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId).catch(() => undefined);
          } finally {
            abandon();
          }
        },
        abandon,
      };
    },
    close: async () => {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
  try {
    await run('redis-cli', [...(o.password ? ['--no-auth-warning', '-a', o.password] : []), '--cluster', 'create', ...ports.map((p) => `${LOOPBACK}:${p}`), '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'], { timeout: 30_000 });
    await cluster.waitHealthy();
    // Replicas must have synced before a master is killed, or the promotion has nothing to serve.
    await waitFor(async () => (await Promise.all(nodes.map((n) => ask(n.port, 'INFO', 'replication')))).every((i) => !i.includes('role:slave') || i.includes('master_link_status:up')), 20_000, 100, 'replicas in sync');
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return cluster;
}

async function clusterSlots(port: number, password?: string): Promise<unknown> {
  const r = new Redis({ host: LOOPBACK, port, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 1_000, retryStrategy: () => null, ...(password ? { password } : {}) });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call('CLUSTER', 'SLOTS');
  } finally {
    r.disconnect();
  }
}

export interface TestSentinels {
  master: TestRedis;
  replica: TestRedis;
  sentinels: TestRedis[];
  /** `redis+sentinel://127.0.0.1:s1,…/NAME` */
  url: string;
  name: string;
  /** Current master port as the sentinels see it. */
  masterPort(): Promise<number>;
  close(): Promise<void>;
}

/** One master, one replica, three sentinels (quorum 2, down-after 1 s, failover timeout 3 s). */
export async function startSentinels(name = 'svcnode-q', o: { sentinelPassword?: string } = {}): Promise<TestSentinels> {
  const master = await startRedis({ appendonly: true });
  const replica = await startRedis({ appendonly: true, args: ['--replicaof', LOOPBACK, String(master.port)] });
  const sentinelConfig = [
    `sentinel monitor ${name} ${LOOPBACK} ${master.port} 2`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 3000`,
    `sentinel parallel-syncs ${name} 1`,
    ...(o.sentinelPassword ? [`requirepass ${o.sentinelPassword}`] : []),
    '',
  ].join('\n');
  const sentinels = await Promise.all([0, 1, 2].map(() => startRedis({ config: sentinelConfig, args: ['--sentinel'] })));
  const group: TestSentinels = {
    master,
    replica,
    sentinels,
    name,
    url: `redis+sentinel://${sentinels.map((s) => `${LOOPBACK}:${s.port}`).join(',')}/${name}`,
    async masterPort() {
      for (const s of sentinels) {
        const r = new Redis({ host: LOOPBACK, port: s.port, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null, ...(o.sentinelPassword ? { password: o.sentinelPassword } : {}) });
        r.on('error', () => undefined);
        try {
          await r.connect();
          const [, port] = (await r.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string];
          return Number(port);
        } catch {
          // ask the next sentinel
        } finally {
          r.disconnect();
        }
      }
      throw new Error('no sentinel answered');
    },
    close: async () => {
      await Promise.all([master, replica, ...sentinels].map((n) => n.close()));
    },
  };
  try {
    await waitFor(async () => (await cmd(replica.port, 'INFO', 'replication')).includes('master_link_status:up'), 15_000, 100, 'replica in sync');
    // Sentinels discover each other and the replica through the master's hello channel.
    await waitFor(async () => (await Promise.all(sentinels.map((s) => sentinelSeesReplica(s.port, name, o.sentinelPassword)))).every(Boolean), 15_000, 200, 'sentinels see the replica and each other');
  } catch (error) {
    await group.close();
    throw error;
  }
  return group;
}

async function sentinelSeesReplica(port: number, name: string, password?: string): Promise<boolean> {
  const r = new Redis({ host: LOOPBACK, port, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null, ...(password ? { password } : {}) });
  r.on('error', () => undefined);
  try {
    await r.connect();
    const replicas = (await r.call('SENTINEL', 'replicas', name)) as unknown[];
    const others = (await r.call('SENTINEL', 'sentinels', name)) as unknown[];
    return replicas.length >= 1 && others.length >= 2;
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** `count` filler keys in `slot` on its master, so a migration has something to move; the master and another master to move it to. */
export async function fillSlot(cluster: TestCluster, slot: number, count: number): Promise<{ owner: TestRedis; target: TestRedis }> {
  const owner = await cluster.masterOf(slot);
  const target = cluster.nodes.find((n) => n !== owner);
  if (!target) throw new Error('no second master');
  const admin = new Redis({ host: owner.host, port: owner.port });
  try {
    const pipeline = admin.pipeline();
    for (let i = 0; i < count; i++) pipeline.set(`{svcnode}:fill:${i}`, 'x');
    await pipeline.exec();
  } finally {
    admin.disconnect();
  }
  return { owner, target };
}

/** A producer on the cluster as the README shows it (an ioredis Cluster, the hash-tagged prefix), `n` jobs of node `slow` added, waited for until a quarter completed. */
export async function queueQuarterDone(cluster: TestCluster, n: number): Promise<{ producer: Cluster; queue: Queue; jobs: Job[]; completed: () => Promise<number> }> {
  const producer = new Cluster(cluster.seeds, { redisOptions: { maxRetriesPerRequest: null } });
  const queue = new Queue('service-node-invocations', { connection: producer, prefix: '{svcnode}' });
  queue.on('error', () => undefined);
  const jobs = await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'invoke', data: { nodeId: 'slow', context: { i: String(i) } } })));
  const completed = (): Promise<number> => queue.getCompletedCount();
  await waitFor(async () => (await completed()) >= n / 4, 60_000, 50, 'a quarter of the jobs completed');
  return { producer, queue, jobs, completed };
}

/** SIGKILL the master owning the queue's slot; resolves with the ms until a replica was promoted. */
export async function killQueueMaster(cluster: TestCluster, timeoutMs: number): Promise<number> {
  const owner = await cluster.masterOf(keySlot('{svcnode}'));
  const killedAt = Date.now();
  owner.kill();
  await waitFor(async () => (await cluster.masterOf(keySlot('{svcnode}'))).port !== owner.port, timeoutMs, 100, 'a replica promoted');
  return Date.now() - killedAt;
}
