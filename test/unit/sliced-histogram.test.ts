/**
 * SlicedHistogram: the text prom-client writes for the same observations, rendered a slice of
 * series at a time with the event loop let through in between.
 */
import { Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { Metrics } from '../../src/observability/metrics.js';
import { startMetricsServer } from '../../src/observability/server.js';
import { SlicedHistogram } from '../../src/observability/sliced-histogram.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function both(): { sliced: SlicedHistogram; registry: Registry; reference: Histogram<'node'> } {
  const registry = new Registry();
  const reference = new Histogram({ name: 'svcnode_call_duration_seconds', help: 'Duration of one call attempt', labelNames: ['node'] as const, buckets: BUCKETS, registers: [registry] });
  return { sliced: new SlicedHistogram('svcnode_call_duration_seconds', 'Duration of one call attempt', 'node', BUCKETS), registry, reference };
}

describe('SlicedHistogram', () => {
  it('writes what prom-client writes: cumulative buckets (a value on a bound counts in it), +Inf, sum, count, escaped label values', async () => {
    const { sliced, registry, reference } = both();
    const values = [0, 0.005, 0.0051, 0.1, 1, 29.99, 30, 31, 1e6, 0.3];
    const nodes = ['accounts', 'a"b\\c\nd', 'ünïcode', 'empty-after-remove'];
    for (const [i, v] of values.entries()) {
      for (const node of nodes.slice(0, 1 + (i % nodes.length))) {
        sliced.observe(node, v);
        reference.observe({ node }, v);
      }
    }
    sliced.remove('empty-after-remove');
    reference.remove({ node: 'empty-after-remove' });
    expect(await sliced.text()).toBe(await registry.getSingleMetricAsString('svcnode_call_duration_seconds'));
    expect(sliced.size).toBe(3);
  });

  it('lets the event loop through while it renders thousands of series, and includes series added meanwhile', async () => {
    const { sliced, registry, reference } = both();
    for (let i = 0; i < 5_000; i++) {
      sliced.observe(`n${i}`, (i % 40) / 1000);
      reference.observe({ node: `n${i}` }, (i % 40) / 1000);
    }
    let turns = 0;
    let added = false;
    const tick = (): void => {
      turns++;
      if (!added) {
        // A call that finishes during the scrape.
        sliced.observe('late', 0.02);
        reference.observe({ node: 'late' }, 0.02);
        added = true;
      }
      if (turns < 1_000) setImmediate(tick);
    };
    setImmediate(tick);
    const text = await sliced.text();
    // 5,000 series in slices of 250: the loop turned between them (one piece would let it turn 0 times).
    expect(turns).toBeGreaterThanOrEqual(19);
    expect(text).toBe(await registry.getSingleMetricAsString('svcnode_call_duration_seconds'));
    expect(text.split('\n')).toHaveLength(2 + 5_001 * 15);
  });
});

describe('Metrics.exposition (/metrics)', () => {
  it('is what prom-client renders for the same metrics with the duration histogram its own (process figures aside)', async () => {
    const metrics = new Metrics();
    const { reference } = both();
    for (let i = 0; i < 40; i++) {
      const result: Result = { ok: i % 5 !== 0, nodeId: `n${i % 13}`, request: { method: 'GET', url: 'https://h/' }, tls: { protocol: 'TLSv1.3', cipher: null, sessionReused: i % 2 === 0, connectionReused: i % 3 === 0, serverChain: [], clientCertificate: null }, response: null, failure: i % 5 === 0 ? { phase: 'tls', category: 'server_cert_expired', code: 'CERT_HAS_EXPIRED', message: 'm', hint: 'h' } : null, timings: { connectMs: 0, handshakeMs: 0, totalMs: i * 7 }, attempts: 1 };
      metrics.observeAttempt(result);
      metrics.observeInvocation(result);
      reference.observe({ node: result.nodeId }, result.timings.totalMs / 1000);
    }
    // Process and Node.js figures change between two renderings.
    const lines = (text: string): string[] => text.split('\n').filter((l) => !/^(# (HELP|TYPE) )?svcnode_(nodejs_|process_)/.test(l)).sort();
    const ours = await metrics.exposition();
    metrics.registry.registerMetric(reference);
    expect(lines(ours)).toEqual(lines(await metrics.registry.metrics()));
    expect(ours).toContain('svcnode_call_duration_seconds_bucket{le="0.05",node="n7"} 1');
    expect(ours.endsWith('\n')).toBe(true);
  });
});

describe('/metrics when a metric fails to collect', () => {
  it('answers 500 (before: a 200 was already sent, and writing the 500 threw from the error handler)', async () => {
    const metrics = new Metrics();
    new Gauge({
      name: 'svcnode_test_broken',
      help: 'fails',
      registers: [metrics.registry],
      collect: () => {
        throw new Error('collect failed');
      },
    });
    const server = await startMetricsServer(0, metrics, () => ({ status: 'ok' }));
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(500);
      // Still serving.
      expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
