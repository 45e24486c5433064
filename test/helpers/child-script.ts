/**
 * Child processes that run a script against the built modules (`dist/`), for what a test process
 * cannot do to itself: a small file-descriptor limit, a thread pool of one, another interpreter.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './cli.js';

/** The URL of a built module, `dist/src/PATH`, for a child script to import. */
export function distModule(path: string): string {
  return pathToFileURL(join(REPO_ROOT, 'dist', 'src', path)).href;
}

/** Run `file` with `args` to its end: its stdout, or a rejection with its stderr. */
export function outputOf(file: string, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...(o.env ? { env: o.env } : {}), timeout: o.timeoutMs }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
  });
}

/**
 * Script text (ES module) that holds libuv's thread pool busy for about `ms` from the moment it
 * runs, as reads stuck on a hung mount or lookups a DNS server does not answer hold it: run with
 * UV_THREADPOOL_SIZE=1; `busy` settles when the pool is free again. The work is sized by timing a
 * small part of it first, so a faster machine still waits about as long.
 */
export function poolBusyFor(ms: number): string {
  return `
const { pbkdf2, pbkdf2Sync } = await import('node:crypto');
const sizing = performance.now();
pbkdf2Sync('p', 's', 100000, 64, 'sha512');
const iterations = Math.ceil((${ms} / (performance.now() - sizing)) * 100000);
const busy = new Promise((resolve) => pbkdf2('p', 's', iterations, 64, 'sha512', resolve));
`;
}
