/** `certs init-ca` / `certs issue` refuse an output path they cannot create: exit 2, promptly. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('certs output paths that cannot be created', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-outpath-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([['/proc/x'], ['/proc/x/y/z']])('init-ca --out %s exits 2 with SVCNODE_FILE_NOT_FOUND instead of spinning', async (out) => {
    const r = await runCli(['certs', 'init-ca', '--out', out, '--key', 'ec256', '--json'], { timeoutMs: 15_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(2);
    expect(`${r.stdout}${r.stderr}`).toContain('SVCNODE_FILE_NOT_FOUND');
  });

  it('an output path below a regular file is refused; a fresh nested directory is created', async () => {
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    const below = await runCli(['certs', 'init-ca', '--out', join(file, 'ca'), '--key', 'ec256'], { timeoutMs: 15_000 });
    expect(below.code).toBe(2);
    const ca = join(dir, 'a', 'b', 'ca');
    expect((await runCli(['certs', 'init-ca', '--out', ca, '--key', 'ec256'], { timeoutMs: 15_000 })).code).toBe(0);
    const issue = await runCli(['certs', 'issue', '--ca', ca, '--cn', 'bot', '--client', '--out', '/proc/x', '--key', 'ec256'], { timeoutMs: 15_000 });
    expect(issue.timedOut).toBe(false);
    expect(issue.code).toBe(2);
  });
});
