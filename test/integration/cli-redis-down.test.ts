import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { unusedPort } from '../helpers/servers.js';

describe('CLI producers when Redis cannot be reached', () => {
  it.each([['enqueue', 'get-account'], ['failures']])('%s exits 5 with a clear error instead of hanging', async (...args) => {
    const port = await unusedPort();
    const r = await runCli([...args, '--redis', `redis://user:hunter2@127.0.0.1:${port}`], { timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('SVCNODE_REDIS_UNAVAILABLE');
    expect(r.stderr).not.toContain('hunter2');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
  });
});
