/** `certs init-ca` / `certs issue` refuse an output path they cannot create: exit 2, promptly. */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
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

  it('--out naming a regular file: "is a file, not a directory"', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const r = await runCli(['certs', 'init-ca', '--out', file, '--key', 'ec256'], { timeoutMs: 15_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: is a file, not a directory`);
  });

  it('a refusal writes nothing: an existing certificate alone does not get a new key beside it', async () => {
    const ca = join(dir, 'ca-full');
    expect((await runCli(['certs', 'init-ca', '--out', ca, '--key', 'ec256'], { timeoutMs: 15_000 })).code).toBe(0);
    const part = join(dir, 'part');
    mkdirSync(part);
    copyFileSync(join(ca, 'ca.pem'), join(part, 'ca.pem'));
    const r = await runCli(['certs', 'init-ca', '--out', part, '--key', 'ec256'], { timeoutMs: 15_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('already exists; nothing was written');
    // Before: a fresh ca.key was left beside the old ca.pem.
    expect(readdirSync(part)).toEqual(['ca.pem']);
    const issued = join(dir, 'issued-part');
    mkdirSync(issued);
    writeFileSync(join(issued, 'bot9.pem'), 'old\n');
    const issue = await runCli(['certs', 'issue', '--ca', ca, '--cn', 'bot9', '--client', '--out', issued, '--key', 'ec256'], { timeoutMs: 15_000 });
    expect(issue.code).toBe(2);
    expect(readdirSync(issued)).toEqual(['bot9.pem']);
  });

  it('--force replaces a symbolic link at the key path instead of writing the key through it', async () => {
    const out = join(dir, 'linked');
    mkdirSync(out);
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'not a key\n');
    symlinkSync(victim, join(out, 'ca.key'));
    const r = await runCli(['certs', 'init-ca', '--out', out, '--key', 'ec256', '--force'], { timeoutMs: 15_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('not a key\n');
    expect(readFileSync(join(out, 'ca.key'), 'utf8')).toContain('PRIVATE KEY');
  });
});
