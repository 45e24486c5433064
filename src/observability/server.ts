import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  /** Why the status is `down` (e.g. `redis unreachable`, `MOVED: wrong node`, `worker stopped`). */
  reason?: string;
  [key: string]: unknown;
}

/** Where /metrics and /healthz listen unless told otherwise: loopback only, nothing exposed by default. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** `/metrics` (Prometheus text) and `/healthz` (JSON; 200 when ok or degraded, 503 when down). */
export async function startMetricsServer(
  port: number,
  metrics: Metrics,
  health: () => HealthReport | Promise<HealthReport>,
  host = DEFAULT_METRICS_HOST,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    // A query string (a cache-buster, a probe's parameters) does not change what is asked for.
    const path = (req.url ?? '').split('?', 1)[0];
    void (async () => {
      if (path === '/metrics') {
        // Rendered before the status line: a metric that fails to collect gets a 500, not a 200 cut short.
        const text = await metrics.exposition();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      } else if (path === '/healthz') {
        const report = await health();
        res.writeHead(report.status === 'down' ? 503 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(report));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: try /metrics or /healthz\n');
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
