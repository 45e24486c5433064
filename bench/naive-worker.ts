/**
 * Baseline (b): the composition a user would write without svcnode. A BullMQ Worker whose
 * processor makes one keep-alive mTLS request with node:https and returns {status, body}.
 * It gets the same job data as svcnode ({nodeId, context}) and maps it to a URL itself.
 * argv: REDIS_URL CONCURRENCY BASE_URL KEY_FILE CERT_FILE CA_FILE. Reports {ready} over IPC.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { Worker } from 'bullmq';
import { naiveCall } from './lib/naive-call.js';
import { exitWithParent } from './lib/proc.js';

exitWithParent();
const [redisUrl, concurrency, baseUrl, keyFile, certFile, caFile] = process.argv.slice(2);
if (!redisUrl || !concurrency || !baseUrl || !keyFile || !certFile || !caFile) {
  console.error('usage: naive-worker.js REDIS_URL CONCURRENCY BASE_URL KEY CERT CA');
  process.exit(2);
}
const redis = new URL(redisUrl);
const agent = new https.Agent({ keepAlive: true, key: readFileSync(keyFile), cert: readFileSync(certFile), ca: readFileSync(caFile) });

interface Data {
  nodeId: string;
  context: { accountId?: string };
}

const worker = new Worker('service-node-invocations', (job) => naiveCall(`${baseUrl}${encodeURIComponent(String((job.data as Data).context.accountId))}`, agent), {
  connection: { host: redis.hostname, port: Number(redis.port), maxRetriesPerRequest: null },
  concurrency: Number(concurrency),
  // The same retention as svcnode's worker, so Redis does the same work per job.
  removeOnComplete: { age: 86_400, count: 10_000 },
  removeOnFail: { age: 604_800, count: 10_000 },
});
worker.on('error', (error) => console.error(error.message));
await worker.waitUntilReady();
process.send?.({ ready: true });
process.once('SIGTERM', () => {
  void worker.close().then(() => {
    agent.destroy();
    process.exit(0);
  });
});
