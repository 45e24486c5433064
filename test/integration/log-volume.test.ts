/**
 * The worker's log during a failure storm: a backend that refuses every connection, called by
 * many jobs, each retried. Before, every retry logged an info line and every failed invocation a
 * warn line (~300 lines a second for 100 failing jobs a second, 5 GB a day). Now a node's
 * retries of one category are logged once a minute and its failed invocations of one code once
 * every 10 s, with `repeated` counting what was held back; every attempt stays in the failure
 * records, and every job gets its Result. A real worker on a real Redis.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/net.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

describe('log volume of a failure storm', () => {
  let rig: WorkerRig;
  const logs: Record<string, unknown>[] = [];
  beforeAll(async () => {
    const closed = await freePort();
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-log-volume-',
      worker: { concurrency: 8, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) },
      nodes: () => ({ 'refused.json': JSON.stringify({ id: 'refused', request: { method: 'GET', url: `https://127.0.0.1:${closed}/` }, tls: { profile: 'bank' }, retry: { limit: 2, backoffMs: 20, maxBackoffMs: 40 } }) }),
    });
  }, 30_000);
  afterAll(() => rig?.close());

  it('says a node retrying and failing once, with how many were held back, while every job still gets its Result and every attempt is recorded', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rig.client.invoke('refused', {}, { requestId: `storm-${i}`, timeoutMs: 20_000 })));
    for (const r of results) expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'ECONNREFUSED' });
    expect(results.map((r) => r.attempts)).toEqual(Array.from({ length: 20 }, () => 3));
    // Before: 40 retry lines and 20 failure lines.
    const retrying = logs.filter((l) => l.msg === 'transient failure, retrying' && l.nodeId === 'refused');
    const finished = logs.filter((l) => l.msg === 'invocation finished' && l.nodeId === 'refused');
    expect(retrying).toHaveLength(1);
    expect(retrying[0]).toMatchObject({ category: 'connect_failed', code: 'ECONNREFUSED' });
    expect(finished.length).toBeGreaterThanOrEqual(1);
    expect(finished.length).toBeLessThanOrEqual(2);
    expect((await rig.client.failures('refused')).counts.connect_failed).toBe(60);
  }, 40_000);
});
