import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  [key: string]: unknown;
}

/** `/metrics` (Prometheus text) and `/healthz` (JSON; 200 when ok or degraded, 503 when down). */
export async function startMetricsServer(port: number, metrics: Metrics, health: () => HealthReport, host = '0.0.0.0'): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(await metrics.registry.metrics());
      } else if (req.url === '/healthz') {
        const report = health();
        res.writeHead(report.status === 'down' ? 503 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(report));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: try /metrics or /healthz\n');
      }
    })().catch(() => {
      res.writeHead(500);
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
