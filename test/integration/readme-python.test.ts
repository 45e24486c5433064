/**
 * The README's Python producer example, run as written with Debian's python3 and redis-py against
 * a real worker. The `bullmq` package of PyPI cannot be installed here (no PyPI): a module of that
 * name stands in for it, whose `Queue.add` adds the job with Node's bullmq (same queue, name and
 * data), so everything else the example does (the key it reads, the wait, the JSON it parses, the
 * fields it prints) runs for real.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outputOf } from '../helpers/child-script.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { unusedPort } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

/** Debian's interpreter: its python3-redis is what .ci/run installs. */
const PYTHON = '/usr/bin/python3';

/** The ```python block after "From Python" in README.md. */
function readmeExample(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const code = /From Python[\s\S]*?```python\n([\s\S]*?)```/.exec(readme)?.[1];
  if (code === undefined) throw new Error('README.md has no Python example after "From Python"');
  return code;
}

/** The stand-in `bullmq` module: Queue(name, {"connection": url}).add(name, data) → a job with `.id`. */
function bullmqStandIn(dir: string): string {
  const adder = join(dir, 'add-job.mjs');
  const bullmq = pathToFileURL(createRequire(join(REPO_ROOT, 'package.json')).resolve('bullmq')).href;
  writeFileSync(
    adder,
    `import { Queue } from '${bullmq}';
const [url, queueName, jobName, data] = process.argv.slice(2);
const u = new URL(url);
const queue = new Queue(queueName, { connection: { host: u.hostname, port: Number(u.port) } });
const job = await queue.add(jobName, JSON.parse(data));
process.stdout.write(String(job.id));
await queue.close();
`,
  );
  const pkg = join(dir, 'python', 'bullmq');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(
    join(pkg, '__init__.py'),
    `import asyncio, json
class Job:
    def __init__(self, id):
        self.id = id
class Queue:
    def __init__(self, name, opts):
        self.name = name
        self.url = opts["connection"]
    async def add(self, name, data):
        proc = await asyncio.create_subprocess_exec(${JSON.stringify(process.execPath)}, ${JSON.stringify(adder)}, self.url, self.name, name, json.dumps(data), stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError("adding the job failed")
        return Job(out.decode())
    async def close(self):
        pass
`,
  );
  return join(dir, 'python');
}

describe("the README's Python example", () => {
  let rig: WorkerRig | undefined;

  beforeAll(async () => {
    const refused = await unusedPort();
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-readme-python-',
      worker: {},
      // The example's node: it fails at once (nothing listens), so the example prints what it reads.
      nodes: () => ({ 'get-account.json': JSON.stringify({ id: 'get-account', request: { method: 'GET', url: `https://localhost:${refused}/accounts/{{context.accountId}}` }, tls: { profile: 'bank' }, retry: { limit: 0 } }) }),
    });
  });
  afterAll(() => rig?.close());

  it('adds a job, waits for its Result in Redis and prints its failure category and hint', async () => {
    if (!rig) throw new Error('set-up failed');
    const code = readmeExample().replaceAll('redis://127.0.0.1:6379', rig.redis.url);
    const path = bullmqStandIn(rig.dir);
    const out = await outputOf(PYTHON, ['-c', code], { env: { ...process.env, PYTHONPATH: path }, timeoutMs: 60_000 });
    expect(out).toBe('connect_failed check that the backend is up and reachable from this machine (host, port, firewall, proxy)\n');
  }, 90_000);
});
