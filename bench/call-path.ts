/**
 * The per-job call path in one process, without the queue: svcnode's BullMQ processor (render,
 * checks, the mTLS exchange, classification, the stored Result, metrics, failure records) against
 * the naive worker's processor (one keep-alive node:https call returning {status, body}), 64 jobs
 * in flight, the same backend process and a real Redis for the failure store. Both Results are
 * JSON-serialised, as BullMQ does. Alternating rounds; reports CPU µs per job and the ratio.
 * `npm run build && node dist/bench/call-path.js` (BENCH_N jobs per round, BENCH_ROUNDS rounds;
 * BENCH_VARIANTS=svcnode runs one side alone, for a profile of it).
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Job } from 'bullmq';
import { Registry } from '../src/definitions/registry.js';
import { FailureStore } from '../src/failures/store.js';
import { Metrics } from '../src/observability/metrics.js';
import { createLogger } from '../src/observability/logger.js';
import { createProcessor } from '../src/queue/processor.js';
import { AgentPool } from '../src/tls/agents.js';
import { mintPki, writeNode, writeProfile } from './lib/fixtures.js';
import { naiveCall } from './lib/naive-call.js';
import { forkTracked, freePort, installCleanup, onceMessage, stop } from './lib/proc.js';
import { startRedis } from './lib/redis.js';
import { median, round } from './lib/stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.BENCH_N ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const IN_FLIGHT = 64;
const VARIANTS = (process.env.BENCH_VARIANTS ?? 'svcnode,naive').split(',').map((v) => v.trim());

type Call = (job: Job) => Promise<unknown>;

/** Run `n` jobs through `call`, `IN_FLIGHT` at a time; CPU µs per job of this process. */
async function cpuPerJob(call: Call, n: number): Promise<number> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const job = { id: String(i), name: 'invoke', data: { nodeId: 'bench-node', context: { accountId: String(i) } }, progress: 0 } as unknown as Job;
      JSON.stringify(await call(job));
    }
  };
  const before = process.cpuUsage();
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

installCleanup();
const dir = mkdtempSync(join(tmpdir(), 'svcnode-call-path-'));
try {
  const pki = await mintPki(join(dir, 'pki'));
  const backend = forkTracked(join(HERE, 'backend.js'), [pki.serverKeyFile, pki.serverChainFile, pki.rootFile, 'keepalive'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
  const { port } = await onceMessage<{ port: number }>(backend, (m) => m.ready === true, 15_000, 'backend');
  const redis = await startRedis(await freePort(), dir);
  const nodesDir = join(dir, 'nodes');
  const profilesDir = join(dir, 'profiles');
  await mkdir(nodesDir);
  await mkdir(profilesDir);
  await writeProfile(profilesDir, 'bench', pki.clients.rsa2048, pki.rootFile);
  await writeNode(nodesDir, 'bench-node', `https://localhost:${port}/accounts/{{context.accountId}}`, 'bench');
  const registry = await Registry.load(nodesDir, profilesDir);
  const processor = createProcessor({ registry: () => registry, agents: new AgentPool(), store: new FailureStore(redis.admin), metrics: new Metrics(), logger: createLogger({ level: 'error' }) });
  const signal = new AbortController().signal;

  const client = pki.clients.rsa2048;
  const agent = new https.Agent({ keepAlive: true, key: readFileSync(client.keyFile), cert: readFileSync(client.certFile), ca: readFileSync(pki.rootFile) });
  // The naive worker's processor (bench/naive-worker.ts), in process.
  const naive: Call = (job) => naiveCall(`https://localhost:${port}/accounts/${encodeURIComponent((job.data as { context: { accountId: string } }).context.accountId)}`, agent);
  const variants: Record<'svcnode' | 'naive', Call> = { svcnode: (job) => processor(job, 'token', signal), naive };

  const chosen = (['svcnode', 'naive'] as const).filter((v) => VARIANTS.includes(v));
  for (const v of chosen) await cpuPerJob(variants[v], 2_000);
  const runs: Record<'svcnode' | 'naive', number[]> = { svcnode: [], naive: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of r % 2 === 0 ? chosen : [...chosen].reverse()) {
      const us = await cpuPerJob(variants[v], N);
      runs[v].push(us);
      console.error(`call-path round ${r + 1} ${v}: ${round(us, 1)} µs CPU per job (N=${N})`);
    }
  }
  const s = median(runs.svcnode);
  const n = median(runs.naive);
  console.log(`call path in process, CPU per job: svcnode ${round(s, 1)} µs ÷ naive ${round(n, 1)} µs = ${round(s / n, 3)}× (median of ${ROUNDS} alternating rounds)`);
  agent.destroy();
  redis.admin.disconnect();
  await stop(redis.child);
  await stop(backend);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
