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
 * Script text (ES module) that holds libuv's thread pool busy for `ms` from the moment it runs, as
 * reads stuck on a hung mount or lookups a DNS server does not answer hold it: run with
 * UV_THREADPOOL_SIZE=1; `busy` settles when the pool is free again. The thread is held in a real
 * blocking call, the open of a FIFO for reading, which returns when a timer opens it for writing
 * `ms` later. (Before, CPU work sized by timing a sample of it first: when the machine was busier
 * while sampling than after, the hold ended early, and a 5 s timeout test saw its round end after
 * 4.2 s on a loaded CI machine.)
 */
export function poolBusyFor(ms: number): string {
  return `
const holdFs = await import('node:fs');
const holdDir = holdFs.mkdtempSync((await import('node:os')).tmpdir() + '/svcnode-pool-');
const holdFifo = holdDir + '/hold';
(await import('node:child_process')).execFileSync('mkfifo', [holdFifo]);
const busy = new Promise((resolve) => {
  holdFs.open(holdFifo, 'r', (error, reader) => {
    if (!error) holdFs.closeSync(reader);
    holdFs.rmSync(holdDir, { recursive: true, force: true });
    resolve(error);
  });
});
setTimeout(() => holdFs.closeSync(holdFs.openSync(holdFifo, 'w')), ${ms});
`;
}
