import { format } from 'node:util';
import type { Logger } from 'pino';
import { EXIT } from '../src/failures/categories.js';
import { WORKER_DEFAULTS } from '../src/queue/constants.js';
import { StartAbortedError, startWorker, type WorkerOptions } from '../src/queue/worker.js';
import { stuckReads } from '../src/regular-file.js';

/**
 * Exit code when the grace period ran out with jobs still held (they go back to the queue, or
 * through BullMQ's stall check when Redis does not answer), or Redis did not confirm them: a
 * timeout, as everywhere in svcnode.
 */
export const EXIT_UNDRAINED = EXIT.network;

/**
 * The last word on exiting: an unref'd timer that ends the process if something (a socket to a
 * dead Redis) still holds the event loop. It never delays a process that can exit by itself.
 */
function exitBy(ms: number, code: () => number | undefined, logger?: Logger): void {
  setTimeout(() => exitNow(code(), logger), ms).unref();
}

/**
 * process.exit(), unless a file read given up on (a hung mount) still holds a libuv thread:
 * process.exit() joins those threads and would wait for the kernel forever, so the process ends
 * by the default action of SIGTERM instead (exit status 143, what a supervisor's stop expects).
 */
function exitNow(code: number | undefined, logger?: Logger): void {
  const stuck = stuckReads();
  if (stuck.length === 0) process.exit(code);
  logger?.error({ files: stuck, exitCode: code }, 'a file read never answered and holds a thread process.exit() would wait for: ending the process by SIGTERM instead');
  process.removeAllListeners('SIGTERM');
  process.kill(process.pid, 'SIGTERM');
}

/**
 * The process's log is JSON lines on stderr: what a library prints there as plain text (BullMQ's
 * "IMPORTANT! Eviction policy is …", its Redis version advice) becomes a log line of its own.
 */
function consoleToLog(logger: Logger): void {
  const child = logger.child({ source: 'console' });
  console.warn = (...args: unknown[]): void => child.warn(format(...args));
  console.error = (...args: unknown[]): void => child.error(format(...args));
}

/**
 * Run a worker until SIGTERM or SIGINT: stop taking jobs, let held ones finish within the grace
 * period, release Redis and sockets. Resolves with the exit code: 0 when every held job finished,
 * EXIT_UNDRAINED otherwise. The grace period is a hard deadline, whatever Redis does.
 */
export async function runWorkerProcess(options: WorkerOptions & { shutdownGraceMs?: number; logger: Logger }): Promise<number> {
  const graceMs = options.shutdownGraceMs ?? WORKER_DEFAULTS.shutdownGraceMs;
  consoleToLog(options.logger);
  // Listen before starting, so a signal during start-up (e.g. waiting for Redis) still stops cleanly.
  const abort = new AbortController();
  const stop = new Promise<NodeJS.Signals>((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      if (abort.signal.aborted) {
        // A second signal means "now" (a second Ctrl-C, an impatient supervisor): said, and the exit
        // code says jobs may be unfinished. Held jobs return to the queue through BullMQ's stall check.
        options.logger.warn({ signal: s, exitCode: EXIT_UNDRAINED }, 'second stop signal: exiting now without waiting for held jobs; they return to the queue once their locks expire');
        exitNow(EXIT_UNDRAINED, options.logger);
      }
      abort.abort();
      resolve(s);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  let worker;
  try {
    worker = await startWorker({ ...options, signal: abort.signal });
  } catch (error) {
    if (!(error instanceof StartAbortedError)) {
      // startWorker released what it opened; this only guards against a handle it could not cut.
      exitBy(WORKER_DEFAULTS.shutdownMarginMs, () => (typeof process.exitCode === 'number' ? process.exitCode : 1));
      throw error;
    }
    options.logger.info({ signal: await stop }, 'stopped before Redis could be reached; no job was taken');
    return 0;
  }
  const signal = await stop;
  options.logger.info({ signal, graceMs }, 'shutting down: no new jobs, finishing held ones');
  const outcome = { code: EXIT_UNDRAINED, closed: false };
  exitBy(
    graceMs + WORKER_DEFAULTS.shutdownMarginMs,
    () => {
      if (!outcome.closed) options.logger.error({ graceMs }, 'shutdown deadline reached: exiting with jobs unconfirmed');
      return outcome.code;
    },
    options.logger,
  );
  const { drained } = await worker.close(graceMs);
  const code = drained ? 0 : EXIT_UNDRAINED;
  Object.assign(outcome, { code, closed: true });
  options.logger.info({ drained, exitCode: code }, drained ? 'shutdown complete' : 'shutdown complete with jobs unfinished: they are back in the queue, or return to it through the stall check (each is logged above)');
  // A read given up on keeps the event loop alive: do not wait the margin for it.
  if (stuckReads().length > 0) exitNow(code, options.logger);
  exitBy(WORKER_DEFAULTS.shutdownMarginMs, () => code, options.logger);
  return code;
}
