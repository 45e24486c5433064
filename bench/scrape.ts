/**
 * `/metrics` at scale: a worker's Metrics after calls to 5,000 nodes, rendered by svcnode's
 * exposition (a metric, or a slice of the per-node histogram, at a time) against prom-client's
 * `registry.metrics()` of the same metrics with the histogram as a prom-client Histogram (one
 * synchronous piece). Measured in this process: the longest stretch the event loop could not run
 * (the gap between turns of a setImmediate chain) and the time of the whole scrape.
 */
import { performance } from 'node:perf_hooks';
import { Histogram } from 'prom-client';
import type { Result } from '../src/invoke/result.js';
import { Metrics } from '../src/observability/metrics.js';
import type { BenchRow } from './lib/row.js';
import { median, round } from './lib/stats.js';

const NODES = 5_000;
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the worker records for one successful call to `nodeId` on a new connection. */
function call(nodeId: string, ms: number): Result {
  return { ok: true, nodeId, request: { method: 'GET', url: 'https://backend/' }, tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', sessionReused: false, connectionReused: false, serverChain: [], clientCertificate: null }, response: { status: 200, headers: {}, body: null }, failure: null, timings: { connectMs: 1, handshakeMs: 2, totalMs: ms }, attempts: 1 };
}

/** The longest gap between event-loop turns while `render` runs, and its time. */
async function measure(render: () => Promise<string>): Promise<{ blockMs: number; totalMs: number; bytes: number }> {
  let last = performance.now();
  let longest = 0;
  let running = true;
  const tick = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const started = performance.now();
  const text = await render();
  const totalMs = performance.now() - started;
  running = false;
  longest = Math.max(longest, performance.now() - last);
  return { blockMs: longest, totalMs, bytes: text.length };
}

export async function scrapeBench(rounds: number, log: (m: string) => void): Promise<{ result: unknown; rows: BenchRow[] }> {
  const metrics = new Metrics();
  // The histogram as it was: a prom-client Histogram, registered only while the baseline renders.
  const reference = new Histogram({ name: 'svcnode_call_duration_seconds', help: 'Duration of one call attempt', labelNames: ['node'] as const, buckets: BUCKETS, registers: [] });
  for (let i = 0; i < NODES; i++) {
    const nodeId = `node-${String(i).padStart(5, '0')}`;
    for (const ms of [3, 12, 40]) {
      const r = call(nodeId, ms + (i % 7));
      metrics.observeAttempt(r);
      metrics.observeInvocation(r);
      reference.observe({ node: nodeId }, r.timings.totalMs / 1000);
    }
  }
  const runs: Record<'promClient' | 'svcnode', { blockMs: number; totalMs: number; bytes: number }[]> = { promClient: [], svcnode: [] };
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 === 0 ? (['promClient', 'svcnode'] as const) : (['svcnode', 'promClient'] as const)) {
      if (v === 'promClient') {
        metrics.registry.registerMetric(reference);
        runs.promClient.push(await measure(() => metrics.registry.metrics()));
        metrics.registry.removeSingleMetric('svcnode_call_duration_seconds');
      } else {
        runs.svcnode.push(await measure(() => metrics.exposition()));
      }
      log(`scrape round ${r + 1} ${v}: ${JSON.stringify(runs[v].at(-1))}`);
    }
  }
  const med = (v: keyof typeof runs, k: 'blockMs' | 'totalMs'): number => median(runs[v].map((x) => x[k]));
  const blockRatios = runs.svcnode.map((s, i) => s.blockMs / (runs.promClient[i] as { blockMs: number }).blockMs);
  const totalRatios = runs.svcnode.map((s, i) => s.totalMs / (runs.promClient[i] as { totalMs: number }).totalMs);
  const rows: BenchRow[] = [
    { section: 'scrape', metric: `/metrics at ${NODES.toLocaleString('en')} nodes: longest event-loop block`, baseline: `prom-client in one piece ${round(med('promClient', 'blockMs'), 1)} ms`, value: `${round(med('svcnode', 'blockMs'), 1)} ms`, ratio: `${round(median(blockRatios), 3)}×`, target: '', met: '' },
    { section: 'scrape', metric: `/metrics at ${NODES.toLocaleString('en')} nodes: whole scrape`, baseline: `prom-client ${round(med('promClient', 'totalMs'), 1)} ms`, value: `${round(med('svcnode', 'totalMs'), 1)} ms (${round((runs.svcnode[0]?.bytes ?? 0) / 2 ** 20, 1)} MB)`, ratio: `${round(median(totalRatios))}×`, target: '', met: '' },
  ];
  return { result: { nodes: NODES, runs, blockRatios, totalRatios }, rows };
}
