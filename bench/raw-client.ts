/**
 * Baseline (c): a raw keep-alive node:https client, no queue. Runs in its own process.
 * argv: URL KEY_FILE CERT_FILE CA_FILE INFLIGHT WARMUP N. With INFLIGHT 1 it is the sequential
 * latency baseline. Reports {elapsedMs, latenciesMs} over IPC and exits.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { naiveCall } from './lib/naive-call.js';
import { exitWithParent } from './lib/proc.js';

exitWithParent();
const [url, keyFile, certFile, caFile, inflightArg, warmupArg, nArg] = process.argv.slice(2);
if (!url || !keyFile || !certFile || !caFile || !inflightArg || !warmupArg || !nArg) {
  console.error('usage: raw-client.js URL KEY CERT CA INFLIGHT WARMUP N');
  process.exit(2);
}
const agent = new https.Agent({ keepAlive: true, key: readFileSync(keyFile), cert: readFileSync(certFile), ca: readFileSync(caFile) });

async function call(i: number): Promise<void> {
  const { status } = await naiveCall(`${url}${i}`, agent);
  if (status !== 200) throw new Error(`status ${status}`);
}

async function run(n: number, inflight: number, latencies?: number[]): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const t0 = performance.now();
      await call(i);
      latencies?.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, n) }, lane));
  return performance.now() - started;
}

const inflight = Number(inflightArg);
await run(Number(warmupArg), inflight);
const latenciesMs: number[] = [];
const elapsedMs = await run(Number(nArg), inflight, latenciesMs);
agent.destroy();
process.send?.({ elapsedMs, latenciesMs }, () => process.exit(0));
