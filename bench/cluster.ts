/**
 * `npm run bench` section "cluster": one `svcnode worker` process against a 3-master + 3-replica
 * Redis Cluster (redis+cluster://, prefix {svcnode}) beside the same worker against one
 * redis-server, same run, alternating round by round. Both Redis setups run without persistence.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { JOB_NAME, QUEUE_NAME } from '../src/queue/constants.js';
import { spawnTracked, stop, waitForJsonLine } from './lib/proc.js';
import { startRedis } from './lib/redis.js';
import type { BenchRow } from './lib/row.js';
import { median, medianRatio, round } from './lib/stats.js';

const run = promisify(execFile);

export interface ClusterBenchOptions {
  cli: string;
  nodesDir: string;
  profilesDir: string;
  /** A node of `nodesDir` whose backend answers at once (keep-alive). */
  nodeId: string;
  tmp: string;
  rounds: number;
  concurrency: number;
  /** Jobs per timed run. @defaultValue $BENCH_CLUSTER_N or 4000 */
  n?: number;
  log: (message: string) => void;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Ports below 55535 whose cluster bus port (+10000) is free as well. */
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const p = 20_000 + Math.floor(Math.random() * 25_000);
    if (!ports.includes(p) && (await portFree(p)) && (await portFree(p + 10_000))) ports.push(p);
  }
  return ports;
}

/** The reply of one command (PING by default) on a node, or undefined when it does not answer. */
async function answers(port: number, command: string[] = ['PING']): Promise<string | undefined> {
  const r = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return String(await r.call(command[0] as string, ...command.slice(1)));
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

async function startCluster(dir: string): Promise<{ url: string; seeds: { host: string; port: number }[]; stop(): Promise<void> }> {
  const ports = await clusterPorts(6);
  const children = await Promise.all(
    ports.map(async (port) => {
      const d = join(dir, `cluster-${port}`);
      await mkdir(d, { recursive: true });
      const child = spawnTracked('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', d, '--save', '', '--appendonly', 'no', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
      for (let i = 0; !(await answers(port)); i++) {
        if (i > 100) throw new Error(`cluster node on port ${port} did not start within 5 s`);
        await sleep(50);
      }
      return child;
    }),
  );
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 60_000 });
  for (let i = 0; ; i++) {
    const states = await Promise.all(ports.map(async (port) => (await answers(port, ['CLUSTER', 'INFO']))?.includes('cluster_state:ok')));
    if (states.every(Boolean)) break;
    if (i > 300) throw new Error('cluster not ok within 30 s');
    await sleep(100);
  }
  return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, seeds: ports.map((port) => ({ host: '127.0.0.1', port })), stop: async () => void (await Promise.all(children.map((c) => stop(c)))) };
}

/** Single node vs Redis Cluster, one worker process each, alternating rounds; jobs per second. */
export async function clusterThroughput(o: ClusterBenchOptions): Promise<{ result: Record<string, unknown>; rows: BenchRow[] }> {
  const n = o.n ?? Number(process.env.BENCH_CLUSTER_N ?? 4000);
  const warm = 500;
  o.log('cluster: starting a 3-master + 3-replica Redis Cluster and a single redis-server');
  const singleDir = join(o.tmp, 'single');
  await mkdir(singleDir, { recursive: true });
  const [singlePort] = await clusterPorts(1);
  const [cluster, single] = await Promise.all([startCluster(o.tmp), startRedis(singlePort as number, singleDir)]);
  const producer = new Cluster(cluster.seeds, { redisOptions: { maxRetriesPerRequest: null } });
  const queues = {
    single: new Queue(QUEUE_NAME, { connection: { url: single.url, maxRetriesPerRequest: null } }),
    cluster: new Queue(QUEUE_NAME, { connection: producer, prefix: '{svcnode}' }),
  };
  const urls = { single: single.url, cluster: cluster.url };
  const runs: Record<'single' | 'cluster', number[]> = { single: [], cluster: [] };
  const batch = async (queue: Queue, count: number): Promise<number> => {
    const t0 = performance.now();
    for (let s = 0; s < count; s += 1000) {
      await queue.addBulk(Array.from({ length: Math.min(1000, count - s) }, (_, k) => ({ name: JOB_NAME, data: { nodeId: o.nodeId, context: { accountId: String(s + k) } } })));
    }
    while ((await queue.getCompletedCount()) < count) await sleep(5);
    return performance.now() - t0;
  };
  try {
    for (let r = 0; r < o.rounds; r++) {
      for (const v of r % 2 === 0 ? (['single', 'cluster'] as const) : (['cluster', 'single'] as const)) {
        if (v === 'single') await single.admin.flushall();
        else await Promise.all(producer.nodes('master').map((m) => m.flushall()));
        const child = spawnTracked(process.execPath, [o.cli, 'worker', '--redis', urls[v], '--nodes', o.nodesDir, '--profiles', o.profilesDir, '--concurrency', String(o.concurrency)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SVCNODE_LOG_LEVEL: 'info' } });
        try {
          await waitForJsonLine(child, 'stderr', (l) => l.msg === 'worker started', 60_000, `svcnode worker (${v})`);
          await batch(queues[v], warm);
          if (v === 'single') await single.admin.flushall();
          else await Promise.all(producer.nodes('master').map((m) => m.flushall()));
          const ms = await batch(queues[v], n);
          runs[v].push((n / ms) * 1000);
          o.log(`cluster round ${r + 1} ${v}: ${Math.round((n / ms) * 1000)} invocations/s (N=${n})`);
        } finally {
          await stop(child);
        }
      }
    }
  } finally {
    await Promise.all([queues.single.close(), queues.cluster.close()]);
    producer.disconnect();
    single.admin.disconnect();
    await Promise.all([cluster.stop(), stop(single.child)]);
  }
  const med = { single: median(runs.single), cluster: median(runs.cluster) };
  const ratio = medianRatio(runs.cluster, runs.single);
  return {
    result: { n, warmup: warm, concurrency: o.concurrency, runsPerSecond: runs, median: med, clusterVsSingle: ratio },
    rows: [{ section: 'cluster', metric: 'one worker on Redis Cluster 3+3 ÷ single node', baseline: `single ${Math.round(med.single)}/s`, value: `cluster ${Math.round(med.cluster)}/s`, ratio: `${round(ratio)}×`, target: '', met: '' }],
  };
}
