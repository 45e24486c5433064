/**
 * `npm run bench` (issue #5): svcnode against baselines measured in the same run, on this machine.
 *
 * Real redis-server on a free port, real mTLS backends in their own processes (keep-alive, and
 * `Connection: close` for handshake cost), certificates minted for the run. Variants alternate
 * round by round and every figure is the median over rounds of a ratio to its baseline. Prints a
 * table and writes bench/results/latest.json.
 *
 * Environment: BENCH_ROUNDS (default 7 for throughput after a discarded warm-up round, 5 for latency, 3 for handshake and memory), BENCH_CONCURRENCY (64), BENCH_N (throughput jobs per run; auto),
 * BENCH_LATENCY_N (400), BENCH_ONLY (throughput,handshake,latency,memory,cluster,scrape), BENCH_CLUSTER_N (4000), BENCH_VARIANTS
 * (throughput variants: svcnode,naive,raw),
 * BENCH_CPU_PROF=DIR (run the svcnode and naive workers under `node --cpu-prof` into DIR;
 * BENCH_CPU_PROF_INTERVAL_US sets the sampling interval, default 1000),
 * BENCH_WORKER_NODE_ARGS (space-separated node flags for both workers, e.g. `--require ./gc-stats.cjs`),
 * BENCH_SCALE_NODES / BENCH_SCALE_PROFILES (the memory section's large fixture: 1000 / 50).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger } from '../src/observability/logger.js';
import { ServiceNodeClient } from '../src/queue/client.js';
import { JOB_NAME, QUEUE_NAME } from '../src/queue/constants.js';
import { startWorker } from '../src/queue/worker.js';
import { KEY_TYPES, mintPki, writeNode, writeProfile, writeScaleFixture, type KeyType, type Pki } from './lib/fixtures.js';
import { clusterThroughput } from './cluster.js';
import { scrapeBench } from './scrape.js';
import { machineInfo } from './lib/machine.js';
import type { BenchRow } from './lib/row.js';
import { cpuMsOf, forkTracked, offMainCpuMsOf, freePort, installCleanup, onceMessage, rssOf, spawnTracked, stop, waitForJsonLine } from './lib/proc.js';
import { startRedis } from './lib/redis.js';
import { median, medianRatio, percentile, ratioSpread, round } from './lib/stats.js';
import { storedBytesPerJob, type StoredBytes } from './lib/stored.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const CLI = resolve(HERE, '../src/cli/main.js');
const RESULTS_DIR = resolve(HERE, '../../bench/results');

const env = process.env;
/** Rounds per section: throughput and latency runs are short, so they get more rounds against noise. */
const ROUNDS_SET = env.BENCH_ROUNDS ? Number(env.BENCH_ROUNDS) : undefined;
const ROUNDS = { throughput: ROUNDS_SET ?? 7, handshake: ROUNDS_SET ?? 3, latency: ROUNDS_SET ?? 5, memory: ROUNDS_SET ?? 3 };
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 64);
const FIXED_N = env.BENCH_N ? Number(env.BENCH_N) : undefined;
const LATENCY_N = Number(env.BENCH_LATENCY_N ?? 400);
const ONLY = new Set((env.BENCH_ONLY ?? 'throughput,handshake,latency,memory,cluster,scrape').split(',').map((s) => s.trim()));
/** Throughput variants to run (for profiling one of them): svcnode,naive,raw. */
const VARIANTS = (env.BENCH_VARIANTS ?? 'svcnode,naive,raw').split(',').map((s) => s.trim());
const CPU_PROF = env.BENCH_CPU_PROF ? resolve(env.BENCH_CPU_PROF) : undefined;
const WATCHDOG_MS = 15 * 60_000;
/** The memory section's large fixture (BENCH_SCALE_NODES, BENCH_SCALE_PROFILES): measure a deployment's own scale. */
const SCALE_NODES = Number(env.BENCH_SCALE_NODES ?? 1000);
const SCALE_PROFILES = Number(env.BENCH_SCALE_PROFILES ?? 50);

/** The RSS target is set for the default fixture (1,000 nodes, 50 profiles) only. */
function rssTarget(bytes: number): Pick<BenchRow, 'target' | 'met'> {
  if (SCALE_NODES !== 1000 || SCALE_PROFILES !== 50) return { target: '', met: '' };
  return { target: '≤200 MB', met: bytes <= 200 * 2 ** 20 ? 'yes' : 'NO' };
}

const log = (message: string): void => void process.stderr.write(`bench: ${message}\n`);

const rotate = <T>(list: readonly T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length] as T);
const mb = (bytes: number): number => round(bytes / 2 ** 20, 1);

// ---------------------------------------------------------------------------------------------
// Processes

interface Backend {
  child: ChildProcess;
  port: number;
  /** Counters since the previous call (the backend resets them). */
  stats(): Promise<{ requests: number; connections: number; resumed: number }>;
}

async function startBackend(pki: Pki, mode: 'keepalive' | 'close'): Promise<Backend> {
  const child = forkTracked(join(HERE, 'backend.js'), [pki.serverKeyFile, pki.serverChainFile, pki.rootFile, mode], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
  const { port } = await onceMessage<{ port: number }>(child, (m) => m.ready === true, 15_000, `backend (${mode})`);
  child.once('exit', (code, signal) => {
    if (signal !== 'SIGTERM') log(`backend (${mode}) exited unexpectedly (code ${code}, signal ${signal}): the run in progress will fail`);
  });
  return {
    child,
    port,
    async stats() {
      const answer = onceMessage<{ stats: { requests: number; connections: number; resumed: number } }>(child, (m) => m.stats !== undefined, 5_000, 'backend stats');
      child.send({ stats: true });
      return (await answer).stats;
    },
  };
}

interface WorkerHandle {
  pid: number;
  startupMs: number;
  /** svcnode's error-level log lines (pino level ≥ 50) seen so far. */
  errors: string[];
  stop(): Promise<void>;
}

function profArgs(name: string): string[] {
  const extra = env.BENCH_WORKER_NODE_ARGS ? env.BENCH_WORKER_NODE_ARGS.split(' ').filter(Boolean) : [];
  return CPU_PROF ? [...extra, '--cpu-prof', '--cpu-prof-interval', env.BENCH_CPU_PROF_INTERVAL_US ?? '1000', '--cpu-prof-dir', CPU_PROF, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : extra;
}

/** `svcnode worker` as a child process; ready when it logs 'worker started'. */
async function startSvcnode(redisUrl: string, o: { nodesDir: string; profilesDir: string; concurrency: number; resumption?: boolean }): Promise<WorkerHandle> {
  const started = performance.now();
  const args = [...profArgs('svcnode'), CLI, 'worker', '--redis', redisUrl, '--nodes', o.nodesDir, '--profiles', o.profilesDir, '--concurrency', String(o.concurrency)];
  if (o.resumption === false) args.push('--no-tls-session-resumption');
  const child = spawnTracked(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...env, SVCNODE_LOG_LEVEL: 'info' } });
  const errors: string[] = [];
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (/"level":(5|6)\d/.test(line) && errors.length < 20) errors.push(line.slice(0, 500));
  });
  await waitForJsonLine(child, 'stderr', (l) => l.msg === 'worker started', 60_000, 'svcnode worker');
  return { pid: child.pid as number, startupMs: performance.now() - started, errors, stop: () => stop(child) };
}

/** The naive BullMQ + node:https worker as a child process. */
async function startNaive(redisUrl: string, pki: Pki, backendPort: number, concurrency: number): Promise<WorkerHandle> {
  const started = performance.now();
  const client = pki.clients.rsa2048;
  const child = forkTracked(join(HERE, 'naive-worker.js'), [redisUrl, String(concurrency), `https://localhost:${backendPort}/accounts/`, client.keyFile, client.certFile, pki.rootFile], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: profArgs('naive'),
  });
  await onceMessage(child, (m) => m.ready === true, 30_000, 'naive worker');
  return { pid: child.pid as number, startupMs: performance.now() - started, errors: [], stop: () => stop(child) };
}

/** The raw keep-alive node:https client (no queue) in a child process. */
async function rawRun(pki: Pki, backendPort: number, inflight: number, warmup: number, n: number): Promise<{ elapsedMs: number; latenciesMs: number[] }> {
  const client = pki.clients.rsa2048;
  const child = forkTracked(join(HERE, 'raw-client.js'), [`https://localhost:${backendPort}/accounts/`, client.keyFile, client.certFile, pki.rootFile, String(inflight), String(warmup), String(n)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: [],
  });
  return onceMessage(child, (m) => m.elapsedMs !== undefined, 300_000, 'raw client');
}

// ---------------------------------------------------------------------------------------------
// Queue helpers

interface Bench {
  redisUrl: string;
  admin: Redis;
  redisPid: number;
  queue: Queue;
  pki: Pki;
  keepalive: Backend;
  close: Backend;
  nodesDir: string;
  profilesDir: string;
  tmp: string;
}

async function enqueue(queue: Queue, count: number, offset: number, nodeId: (i: number) => string): Promise<void> {
  for (let s = 0; s < count; s += 1000) {
    const size = Math.min(1000, count - s);
    await queue.addBulk(Array.from({ length: size }, (_, k) => ({ name: JOB_NAME, data: { nodeId: nodeId(offset + s + k), context: { accountId: String(offset + s + k) } } })));
  }
}

/** Poll until nothing is waiting, active or delayed (every job completed or failed). */
async function drain(queue: Queue, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children');
    if (Object.values(c).every((v) => v === 0)) return;
    if (performance.now() > deadline) throw new Error(`queue not drained within ${timeoutMs} ms: ${JSON.stringify(c)}`);
    await sleep(5);
  }
}

/** Enqueue `n` jobs with addBulk and wait until all are completed; returns elapsed ms. */
async function timedBatch(queue: Queue, n: number, offset: number, nodeId: (i: number) => string): Promise<number> {
  const t0 = performance.now();
  await enqueue(queue, n, offset, nodeId);
  await drain(queue, 300_000);
  return performance.now() - t0;
}

/** CPU ms used per job by each process in `pids` while `run` ran; `workerOffMain`: the worker's, off its main thread. */
async function cpuPerJob<T>(pids: Record<string, number>, n: number, run: () => Promise<T>): Promise<{ value: T; cpuMsPerJob: Record<string, number> }> {
  const entries = Object.entries(pids);
  const sample = (): Promise<number[]> => Promise.all([...entries.map(([, pid]) => cpuMsOf(pid)), ...(pids.worker === undefined ? [] : [offMainCpuMsOf(pids.worker)])]);
  const before = await sample();
  const value = await run();
  const after = await sample();
  const names = [...entries.map(([k]) => k), ...(pids.worker === undefined ? [] : ['workerOffMain'])];
  return { value, cpuMsPerJob: Object.fromEntries(names.map((k, i) => [k, round(((after[i] as number) - (before[i] as number)) / n, 3)])) };
}

/** Every job completed with a good answer, and svcnode recorded no failure. */
async function verify(b: Bench, kind: 'svcnode' | 'naive', worker: WorkerHandle): Promise<{ handshakes: number; resumed: number }> {
  const counts = await b.queue.getJobCounts('failed', 'completed');
  if (counts.failed) throw new Error(`${kind}: ${counts.failed} jobs failed`);
  for (const job of await b.queue.getJobs(['completed'], 0, 49)) {
    const rv = job.returnvalue as { ok?: boolean; status?: number; response?: { status?: number } } | null;
    const good = kind === 'svcnode' ? rv?.ok === true : rv?.status === 200;
    if (!good) throw new Error(`${kind}: job ${job.id} returned ${JSON.stringify(rv).slice(0, 800)}`);
  }
  if (worker.errors.length) throw new Error(`${kind} worker logged errors:\n${worker.errors.join('\n')}`);
  let handshakes = 0;
  let resumed = 0;
  if (kind === 'svcnode') {
    for (const key of await b.admin.keys('svcnode:failures:node:*:counts')) {
      const h = await b.admin.hgetall(key);
      for (const [field, value] of Object.entries(h)) {
        if (field === 'handshakes_ok') handshakes += Number(value);
        else if (field === 'session_reused') resumed += Number(value);
        else throw new Error(`svcnode recorded failures on ${key}: ${JSON.stringify(h)}`);
      }
    }
  }
  return { handshakes, resumed };
}

// ---------------------------------------------------------------------------------------------
// Sections

const rows: BenchRow[] = [];
const results: Record<string, unknown> = {};

/** A timed run should take about this long: long enough to average out a noisy machine's seconds. */
const THROUGHPUT_RUN_MS = 4000;

async function throughput(b: Bench): Promise<void> {
  const W = 1000;
  let n = FIXED_N;
  const runs: Record<'svcnode' | 'naive' | 'raw', number[]> = { svcnode: [], naive: [], raw: [] };
  const cpu: Record<'svcnode' | 'naive', Record<string, number>[]> = { svcnode: [], naive: [] };
  const stored: Record<'svcnode' | 'naive', StoredBytes[]> = { svcnode: [], naive: [] };
  // Round -1 is a warm-up, discarded: the first runs of a bench meet a cold Redis, backend and page
  // cache, and would count against whichever variant goes first. It also sizes the timed runs.
  const warmRates: number[] = [];
  for (let r = -1; r < ROUNDS.throughput; r++) {
    const warmup = r < 0;
    for (const v of rotate(['svcnode', 'naive', 'raw'] as const, r + 3).filter((x) => VARIANTS.includes(x) && !(warmup && x === 'raw'))) {
      await b.admin.flushall();
      let rate: number;
      if (v === 'raw') {
        const { elapsedMs } = await rawRun(b.pki, b.keepalive.port, CONCURRENCY, W, n ?? 5000);
        rate = ((n ?? 5000) / elapsedMs) * 1000;
      } else {
        const w = v === 'svcnode' ? await startSvcnode(b.redisUrl, { nodesDir: b.nodesDir, profilesDir: b.profilesDir, concurrency: CONCURRENCY }) : await startNaive(b.redisUrl, b.pki, b.keepalive.port, CONCURRENCY);
        try {
          await timedBatch(b.queue, W, 0, () => 'tp');
          const size = warmup ? 4 * W : (n as number);
          const { value: ms, cpuMsPerJob } = await cpuPerJob({ worker: w.pid, redis: b.redisPid, backend: b.keepalive.child.pid as number, producer: process.pid }, size, () => timedBatch(b.queue, size, W, () => 'tp'));
          await verify(b, v, w);
          rate = (size / ms) * 1000;
          if (warmup) {
            warmRates.push(rate);
            log(`throughput warm-up ${v}: ${Math.round(rate)} invocations/s (N=${size}, discarded)`);
            continue;
          }
          cpu[v].push(cpuMsPerJob);
          stored[v].push(await storedBytesPerJob(b.admin, QUEUE_NAME));
        } finally {
          await w.stop();
        }
      }
      runs[v].push(rate);
      log(`throughput round ${r + 1} ${v}: ${Math.round(rate)} invocations/s (N=${n})${v === 'raw' ? '' : `, CPU ms/job ${JSON.stringify(cpu[v].at(-1))}, stored bytes/job ${JSON.stringify(stored[v].at(-1))}`}`);
    }
    // Size the timed runs from the slower variant's warm-up rate.
    if (warmup) n ??= Math.min(30_000, Math.max(2000, Math.round(((warmRates.length ? Math.min(...warmRates) : 1250) * THROUGHPUT_RUN_MS) / 1000 / 500) * 500));
  }
  const med = { svcnode: median(runs.svcnode), naive: median(runs.naive), raw: median(runs.raw) };
  const ratios = { svcnodeVsNaive: medianRatio(runs.svcnode, runs.naive), svcnodeVsRaw: medianRatio(runs.svcnode, runs.raw), naiveVsRaw: medianRatio(runs.naive, runs.raw) };
  const cpuMed = (v: 'svcnode' | 'naive'): Record<string, number> => Object.fromEntries(Object.keys(cpu[v][0] ?? {}).map((k) => [k, round(median(cpu[v].map((c) => c[k] as number)), 3)]));
  const cpuMedian = { svcnode: cpuMed('svcnode'), naive: cpuMed('naive') };
  const spread = ratioSpread(runs.svcnode, runs.naive);
  const storedMed = (v: 'svcnode' | 'naive'): StoredBytes => ({ returnValue: median(stored[v].map((s) => s.returnValue)), eventEntry: median(stored[v].map((s) => s.eventEntry)) });
  const storedMedian = { svcnode: storedMed('svcnode'), naive: storedMed('naive') };
  results.throughput = { n, warmup: W, concurrency: CONCURRENCY, runsPerSecond: runs, median: med, ratios, spread, cpuMsPerJob: { runs: cpu, median: cpuMedian }, storedBytesPerJob: { runs: stored, median: storedMedian }, target: { svcnodeVsNaive: 1.0 } };
  const fmt = (x: number): string => `${Math.round(x)}/s`;
  rows.push({ section: 'throughput', metric: 'svcnode ÷ naive BullMQ+https', baseline: `naive ${fmt(med.naive)}`, value: `svcnode ${fmt(med.svcnode)}`, ratio: `${round(ratios.svcnodeVsNaive)}× (rounds ${round(spread.min)}–${round(spread.max)}×)`, target: '≥1.0×', met: ratios.svcnodeVsNaive >= 1.0 ? 'yes' : 'NO' });
  const wk = { svcnode: cpuMedian.svcnode.worker ?? Number.NaN, naive: cpuMedian.naive.worker ?? Number.NaN };
  rows.push({ section: 'throughput', metric: 'worker CPU per invocation, svcnode ÷ naive', baseline: `naive ${round(wk.naive)} ms`, value: `svcnode ${round(wk.svcnode)} ms`, ratio: `${round(wk.svcnode / wk.naive)}×`, target: '', met: '' });
  // Off the main thread, a keep-alive worker's CPU is V8's: parallel scavenges, concurrent marking, compiler jobs.
  const off = { svcnode: cpuMedian.svcnode.workerOffMain ?? Number.NaN, naive: cpuMedian.naive.workerOffMain ?? Number.NaN };
  rows.push({ section: 'throughput', metric: "… of it off the main thread (V8's GC and compiler threads)", baseline: `naive ${round(off.naive, 3)} ms`, value: `svcnode ${round(off.svcnode, 3)} ms`, ratio: `${round(off.svcnode / off.naive)}×`, target: '', met: '' });
  const bytes = (s: StoredBytes): number => s.returnValue + s.eventEntry;
  rows.push({ section: 'throughput', metric: 'stored bytes per job (return value + events entry)', baseline: `naive ${bytes(storedMedian.naive)} B`, value: `svcnode ${bytes(storedMedian.svcnode)} B (${storedMedian.svcnode.returnValue} + ${storedMedian.svcnode.eventEntry})`, ratio: `${round(bytes(storedMedian.svcnode) / bytes(storedMedian.naive))}×`, target: '', met: '' });
  // The raw loop's rows only when it ran (BENCH_VARIANTS may leave it out).
  if (runs.raw.length === 0) return;
  rows.push({ section: 'throughput', metric: 'svcnode ÷ raw https loop', baseline: `raw ${fmt(med.raw)}`, value: `svcnode ${fmt(med.svcnode)}`, ratio: `${round(ratios.svcnodeVsRaw)}×`, target: '', met: '' });
  rows.push({ section: 'throughput', metric: 'naive ÷ raw https loop', baseline: `raw ${fmt(med.raw)}`, value: `naive ${fmt(med.naive)}`, ratio: `${round(ratios.naiveVsRaw)}×`, target: '', met: '' });
}

async function handshake(b: Bench): Promise<void> {
  const W = 200;
  const out: Record<string, unknown> = {};
  for (const kt of Object.keys(KEY_TYPES) as KeyType[]) {
    let n: number | undefined;
    const runs: Record<'resumed' | 'full', number[]> = { resumed: [], full: [] };
    const reuse: Record<'resumed' | 'full', number[]> = { resumed: [], full: [] };
    for (let r = 0; r < ROUNDS.handshake; r++) {
      for (const mode of r % 2 === 0 ? (['full', 'resumed'] as const) : (['resumed', 'full'] as const)) {
        await b.admin.flushall();
        const w = await startSvcnode(b.redisUrl, { nodesDir: b.nodesDir, profilesDir: b.profilesDir, concurrency: CONCURRENCY, resumption: mode === 'resumed' });
        try {
          const warmMs = await timedBatch(b.queue, W, 0, () => `hs-${kt}`);
          n ??= Math.min(20_000, Math.max(400, Math.round(((W / warmMs) * 4000) / 100) * 100));
          await b.close.stats();
          const ms = await timedBatch(b.queue, n, W, () => `hs-${kt}`);
          const s = await b.close.stats();
          await verify(b, 'svcnode', w);
          if (s.requests !== n || s.connections !== n) throw new Error(`handshake ${kt}/${mode}: expected ${n} requests on ${n} connections, backend saw ${s.requests} on ${s.connections}`);
          runs[mode].push((n / ms) * 1000);
          reuse[mode].push(s.resumed / s.connections);
          log(`handshake ${kt} round ${r + 1} ${mode}: ${Math.round((n / ms) * 1000)} invocations/s, ${Math.round((100 * s.resumed) / s.connections)}% of ${s.connections} connections resumed (N=${n})`);
        } finally {
          await w.stop();
        }
      }
    }
    const ratio = medianRatio(runs.resumed, runs.full);
    out[kt] = { n, runsPerSecond: runs, resumedFraction: reuse, median: { resumed: median(runs.resumed), full: median(runs.full) }, ratio };
    rows.push({
      section: 'handshake',
      metric: `resumed ÷ full, client ${kt}, Connection: close`,
      baseline: `full ${Math.round(median(runs.full))}/s`,
      value: `resumed ${Math.round(median(runs.resumed))}/s (${Math.round(100 * median(reuse.resumed))}% resumed)`,
      ratio: `${round(ratio)}×`,
      target: '≥1.5×',
      met: ratio >= 1.5 ? 'yes' : 'NO',
    });
  }
  results.handshake = { warmup: W, concurrency: CONCURRENCY, serverKey: 'rsa2048', byClientKey: out, target: 1.5 };
}

async function latency(b: Bench): Promise<void> {
  const W = 50;
  const p = { svcnode: { p50: [] as number[], p99: [] as number[] }, naive: { p50: [] as number[], p99: [] as number[] }, raw: { p50: [] as number[], p99: [] as number[] } };
  const record = (v: keyof typeof p, lat: number[], r: number): void => {
    p[v].p50.push(percentile(lat, 50));
    p[v].p99.push(percentile(lat, 99));
    log(`latency round ${r + 1} ${v}: p50 ${round(percentile(lat, 50))} ms, p99 ${round(percentile(lat, 99))} ms`);
  };
  for (let r = 0; r < ROUNDS.latency; r++) {
    for (const v of rotate(['svcnode', 'naive', 'raw'] as const, r)) {
      await b.admin.flushall();
      if (v === 'raw') {
        record(v, (await rawRun(b.pki, b.keepalive.port, 1, W, LATENCY_N)).latenciesMs, r);
      } else if (v === 'svcnode') {
        const w = await startSvcnode(b.redisUrl, { nodesDir: b.nodesDir, profilesDir: b.profilesDir, concurrency: 1 });
        const client = new ServiceNodeClient({ redisUrl: b.redisUrl });
        try {
          const lat: number[] = [];
          for (let i = 0; i < W + LATENCY_N; i++) {
            const t0 = performance.now();
            const result = await client.invoke('tp', { accountId: String(i) }, { timeoutMs: 30_000 });
            if (i >= W) lat.push(performance.now() - t0);
            if (!result.ok) throw new Error(`latency: svcnode returned ${JSON.stringify(result).slice(0, 800)}`);
          }
          record(v, lat, r);
        } finally {
          await client.close();
          await w.stop();
        }
      } else {
        const w = await startNaive(b.redisUrl, b.pki, b.keepalive.port, 1);
        const events = new QueueEvents(QUEUE_NAME, { connection: { url: b.redisUrl, maxRetriesPerRequest: null } });
        try {
          await events.waitUntilReady();
          const lat: number[] = [];
          for (let i = 0; i < W + LATENCY_N; i++) {
            const t0 = performance.now();
            const job = await b.queue.add(JOB_NAME, { nodeId: 'tp', context: { accountId: String(i) } });
            const rv = (await job.waitUntilFinished(events, 30_000)) as { status: number };
            if (i >= W) lat.push(performance.now() - t0);
            if (rv.status !== 200) throw new Error(`latency: naive returned ${JSON.stringify(rv)}`);
          }
          record(v, lat, r);
        } finally {
          await events.close();
          await w.stop();
        }
      }
    }
  }
  const diff = (a: number[], c: number[]): number => median(a.map((x, i) => x - (c[i] as number)));
  const added = { p50: diff(p.svcnode.p50, p.raw.p50), p99: diff(p.svcnode.p99, p.raw.p99), naiveP50: diff(p.naive.p50, p.raw.p50), naiveP99: diff(p.naive.p99, p.raw.p99) };
  results.latency = { warmup: W, n: LATENCY_N, concurrency: 1, ms: p, median: { svcnode: { p50: median(p.svcnode.p50), p99: median(p.svcnode.p99) }, naive: { p50: median(p.naive.p50), p99: median(p.naive.p99) }, raw: { p50: median(p.raw.p50), p99: median(p.raw.p99) } }, addedMs: added, ratios: { p50: medianRatio(p.svcnode.p50, p.raw.p50), p99: medianRatio(p.svcnode.p99, p.raw.p99) }, target: { addedP50Ms: 5 } };
  const ms = (x: number): string => `${round(x)} ms`;
  rows.push({ section: 'latency', metric: 'queue added p50 (svcnode − raw)', baseline: `raw ${ms(median(p.raw.p50))}`, value: `svcnode ${ms(median(p.svcnode.p50))}`, ratio: `+${ms(added.p50)} (${round(medianRatio(p.svcnode.p50, p.raw.p50), 1)}×)`, target: '≤5 ms', met: added.p50 <= 5 ? 'yes' : 'NO' });
  rows.push({ section: 'latency', metric: 'queue added p99 (svcnode − raw)', baseline: `raw ${ms(median(p.raw.p99))}`, value: `svcnode ${ms(median(p.svcnode.p99))}`, ratio: `+${ms(added.p99)} (${round(medianRatio(p.svcnode.p99, p.raw.p99), 1)}×)`, target: '', met: '' });
  rows.push({ section: 'latency', metric: 'naive BullMQ added p50 / p99', baseline: `raw ${ms(median(p.raw.p50))} / ${ms(median(p.raw.p99))}`, value: `naive ${ms(median(p.naive.p50))} / ${ms(median(p.naive.p99))}`, ratio: `+${ms(added.naiveP50)} / +${ms(added.naiveP99)}`, target: '', met: '' });
}

async function memory(b: Bench): Promise<void> {
  log(`minting ${SCALE_PROFILES} client certificates for the scale fixture`);
  const scale = await writeScaleFixture(join(b.tmp, 'scale'), b.pki, b.keepalive.port, SCALE_NODES, SCALE_PROFILES);
  const single = await writeScaleFixture(join(b.tmp, 'single'), b.pki, b.keepalive.port, 1, 1);
  const rss = { single: [] as number[], idle: [] as number[], after: [] as number[], startupSingleMs: [] as number[], startupScaleMs: [] as number[] };
  for (let r = 0; r < ROUNDS.memory; r++) {
    for (const v of r % 2 === 0 ? (['single', 'scale'] as const) : (['scale', 'single'] as const)) {
      await b.admin.flushall();
      const fx = v === 'single' ? single : scale;
      const w = await startSvcnode(b.redisUrl, { nodesDir: fx.nodesDir, profilesDir: fx.profilesDir, concurrency: CONCURRENCY });
      try {
        await sleep(1000);
        const idle = await rssOf(w.pid);
        if (v === 'single') {
          rss.single.push(idle);
          rss.startupSingleMs.push(w.startupMs);
        } else {
          rss.idle.push(idle);
          rss.startupScaleMs.push(w.startupMs);
          await timedBatch(b.queue, scale.nodeIds.length, 0, (i) => scale.nodeIds[i] as string);
          await verify(b, 'svcnode', w);
          await sleep(1000);
          rss.after.push(await rssOf(w.pid));
        }
        log(`memory round ${r + 1} ${v}: RSS ${mb(idle)} MB at start${v === 'scale' ? `, ${mb(rss.after.at(-1) as number)} MB after one call to each of ${SCALE_NODES} nodes` : ''}`);
      } finally {
        await w.stop();
      }
    }
  }
  // Live agents and sockets: the same fixture through an in-process startWorker.
  await b.admin.flushall();
  await b.keepalive.stats();
  const running = await startWorker({ redisUrl: b.redisUrl, nodesDir: scale.nodesDir, profilesDir: scale.profilesDir, logger: createLogger({ level: 'error' }), concurrency: CONCURRENCY });
  let agents: number;
  let sockets: number;
  try {
    await timedBatch(b.queue, scale.nodeIds.length, 0, (i) => scale.nodeIds[i] as string);
    agents = running.agents.size;
    sockets = running.agents.socketCount();
  } finally {
    await running.close(5000);
  }
  const backend = await b.keepalive.stats();
  const med = { single: median(rss.single), idle: median(rss.idle), after: median(rss.after) };
  results.memory = {
    nodes: SCALE_NODES,
    profiles: SCALE_PROFILES,
    originAliases: ['localhost', '127.0.0.1'],
    rssBytes: rss,
    medianMB: { single: mb(med.single), idle: mb(med.idle), after: mb(med.after) },
    ratios: { idleVsSingle: medianRatio(rss.idle, rss.single), afterVsSingle: medianRatio(rss.after, rss.single) },
    startupMs: { single: median(rss.startupSingleMs), scale: median(rss.startupScaleMs) },
    inProcess: { expectedAgents: scale.pairs, agents, sockets, backendConnections: backend.connections, backendRequests: backend.requests },
    target: { rssMB: 200 },
  };
  rows.push({ section: 'memory', metric: `RSS ${SCALE_NODES} nodes/${SCALE_PROFILES} profiles at start ÷ 1 node`, baseline: `1 node ${mb(med.single)} MB`, value: `${mb(med.idle)} MB`, ratio: `${round(medianRatio(rss.idle, rss.single))}×`, ...rssTarget(med.idle) });
  rows.push({ section: 'memory', metric: `RSS after 1 call to each of ${SCALE_NODES} nodes ÷ 1 node`, baseline: `1 node ${mb(med.single)} MB`, value: `${mb(med.after)} MB`, ratio: `${round(medianRatio(rss.after, rss.single))}×`, ...rssTarget(med.after) });
  rows.push({ section: 'scale', metric: 'live agents / sockets after those calls', baseline: `${scale.pairs} (profile, origin) pairs`, value: `${agents} agents / ${sockets} sockets`, ratio: `${round(agents / scale.pairs)}×`, target: '1 agent per pair', met: agents === scale.pairs ? 'yes' : 'NO' });
  rows.push({ section: 'scale', metric: 'worker startup (spawn → worker started)', baseline: `1 node ${Math.round(median(rss.startupSingleMs))} ms`, value: `${SCALE_NODES} nodes ${Math.round(median(rss.startupScaleMs))} ms`, ratio: `${round(median(rss.startupScaleMs) / median(rss.startupSingleMs))}×`, target: '', met: '' });
}

// ---------------------------------------------------------------------------------------------

function table(): string {
  const head: BenchRow = { section: 'section', metric: 'metric', baseline: 'baseline', value: 'value', ratio: 'ratio', target: 'target', met: 'met' };
  const all = [head, ...rows];
  const keys = Object.keys(head) as (keyof BenchRow)[];
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...all.map((r) => r[k].length))])) as Record<keyof BenchRow, number>;
  const line = (r: BenchRow): string => keys.map((k) => r[k].padEnd(width[k])).join('  ').trimEnd();
  return [line(head), keys.map((k) => '-'.repeat(width[k])).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const started = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), 'svcnode-bench-'));
  installCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const watchdog = setTimeout(() => {
    log(`watchdog: still running after ${WATCHDOG_MS / 60_000} min, aborting`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  if (CPU_PROF) await mkdir(CPU_PROF, { recursive: true });

  const machine = machineInfo();
  log(`${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, redis ${machine.redis}; rounds ${JSON.stringify(ROUNDS)}, concurrency ${CONCURRENCY}`);
  log('minting the PKI');
  const pki = await mintPki(join(tmp, 'pki'));
  const [keepalive, close] = await Promise.all([startBackend(pki, 'keepalive'), startBackend(pki, 'close')]);
  const redis = await startRedis(await freePort(), tmp);
  const nodesDir = join(tmp, 'nodes');
  const profilesDir = join(tmp, 'profiles');
  await mkdir(nodesDir);
  await mkdir(profilesDir);
  await writeProfile(profilesDir, 'bench', pki.clients.rsa2048, pki.rootFile);
  await writeNode(nodesDir, 'tp', `https://localhost:${keepalive.port}/accounts/{{context.accountId}}`, 'bench');
  for (const kt of Object.keys(KEY_TYPES) as KeyType[]) {
    await writeProfile(profilesDir, `hs-${kt}`, pki.clients[kt], pki.rootFile);
    await writeNode(nodesDir, `hs-${kt}`, `https://localhost:${close.port}/accounts/{{context.accountId}}`, `hs-${kt}`);
  }
  const queue = new Queue(QUEUE_NAME, { connection: { url: redis.url, maxRetriesPerRequest: null } });
  const b: Bench = { redisUrl: redis.url, admin: redis.admin, redisPid: redis.child.pid as number, queue, pki, keepalive, close, nodesDir, profilesDir, tmp };
  try {
    if (ONLY.has('throughput')) await throughput(b);
    if (ONLY.has('handshake')) await handshake(b);
    if (ONLY.has('latency')) await latency(b);
    if (ONLY.has('memory')) await memory(b);
    if (ONLY.has('cluster')) {
      const c = await clusterThroughput({ cli: CLI, nodesDir, profilesDir, nodeId: 'tp', tmp, rounds: ROUNDS.throughput, concurrency: CONCURRENCY, log });
      results.cluster = c.result;
      rows.push(...c.rows);
    }
    if (ONLY.has('scrape')) {
      const s = await scrapeBench(ROUNDS.memory, log);
      results.scrape = s.result;
      rows.push(...s.rows);
    }
  } finally {
    await queue.close();
    redis.admin.disconnect();
    await Promise.all([stop(redis.child), stop(keepalive.child), stop(close.child)]);
  }

  const elapsedS = round((performance.now() - started) / 1000, 1);
  const report = { machine, rounds: ROUNDS, concurrency: CONCURRENCY, elapsedS, ...results, table: rows };
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nsvcnode bench: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node} (OpenSSL ${machine.openssl}), redis ${machine.redis}, ${machine.date}`);
  console.log(`alternating rounds (throughput ${ROUNDS.throughput}, handshake ${ROUNDS.handshake}, latency ${ROUNDS.latency}, memory ${ROUNDS.memory}); ratios are medians of per-round ratios; ${elapsedS} s\n`);
  console.log(table());
  console.log(`\nwritten: ${join(RESULTS_DIR, 'latest.json')}`);
}

try {
  await main();
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
}
process.exit();
