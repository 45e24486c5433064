/**
 * Runs the built CLI (`dist/src/cli/main.js`) as a real child process, the way users and the
 * container run it: one-shot commands via `runCli`, long-running `svcnode worker` via `spawnCli`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file (test/helpers/) by walking up to package.json. */
export const REPO_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('test/helpers/cli: cannot find the repository root (package.json)');
    dir = parent;
  }
  return dir;
})();

/** The compiled CLI entry; `npm run build` produces it. */
export const CLI_PATH = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliOptions {
  /** Merged over `process.env`; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** @defaultValue the repository root */
  cwd?: string;
  /** Written to stdin, which is then closed. Without it stdin is closed immediately. */
  input?: string | Buffer;
  /** SIGKILL after this long. @defaultValue 30_000 for `runCli`, none for `spawnCli` */
  timeoutMs?: number;
  /** Script to run instead of the built CLI (the helpers' self-test uses this). */
  entry?: string;
}

export interface CliResult {
  /** Exit code; `null` when killed by a signal (see `signal`, `timedOut`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

function childEnv(env: CliOptions['env']): NodeJS.ProcessEnv {
  // NO_COLOR keeps output assertable; vitest's own worker variables are harmless to inherit.
  const merged: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const [k, v] of Object.entries(env ?? {})) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  return merged;
}

function startChild(args: string[], o: CliOptions): ChildProcess {
  const entry = o.entry ?? CLI_PATH;
  if (!existsSync(entry)) {
    throw new Error(`CLI not built: ${entry} is missing (run \`npm run build\` first)`);
  }
  const child = spawn(process.execPath, [entry, ...args], {
    cwd: o.cwd ?? REPO_ROOT,
    env: childEnv(o.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // A child that exits before reading stdin makes the write fail with EPIPE; that is not our error.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(o.input);
  track(child);
  return child;
}

/** Runs the CLI to completion and collects its output. Never rejects for a non-zero exit. */
export async function runCli(args: string[], o: CliOptions = {}): Promise<CliResult> {
  const started = performance.now();
  const child = startChild(args, o);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, o.timeoutMs ?? 30_000);

  return await new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close' (not 'exit') so stdout/stderr are fully drained.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, durationMs: Math.round(performance.now() - started), timedOut });
    });
  });
}

export type Stream = 'stdout' | 'stderr' | 'both';

export interface WaitForLineOptions {
  /** @defaultValue 'both' */
  stream?: Stream;
  /** @defaultValue 10_000 */
  timeoutMs?: number;
  /** Only consider lines at or after this index into `lines` (e.g. `proc.lines.length` before an action). */
  since?: number;
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** Complete lines seen so far, in arrival order, from both streams. */
  readonly lines: ReadonlyArray<{ stream: 'stdout' | 'stderr'; text: string }>;
  stdout(): string;
  stderr(): string;
  /**
   * Resolves with the first complete line matching `re` (already printed or still to come);
   * rejects on timeout or if the process exits first, quoting the output tail.
   */
  waitForLine(re: RegExp, o?: WaitForLineOptions): Promise<string>;
  /** Sends `signal` (default SIGTERM) and waits for exit; SIGKILL if it outlives `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitInfo>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Starts a long-running CLI process (e.g. `svcnode worker`) and lets the test follow its output. */
export function spawnCli(args: string[], o: CliOptions = {}): CliProcess {
  const child = startChild(args, o);
  const lines: Array<{ stream: 'stdout' | 'stderr'; text: string }> = [];
  const text = { stdout: '', stderr: '' };
  const partial = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  const notify = (): void => listeners.forEach((l) => l());

  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]?.setEncoding('utf8').on('data', (d: string) => {
      text[stream] += d;
      const parts = (partial[stream] + d).split(/\r?\n/);
      partial[stream] = parts.pop() ?? '';
      for (const line of parts) lines.push({ stream, text: line });
      notify();
    });
    child[stream]?.once('end', () => {
      if (partial[stream]) lines.push({ stream, text: partial[stream] });
      partial[stream] = '';
      notify();
    });
  }
  const killTimer = o.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
  let closed = false;
  child.once('close', () => {
    clearTimeout(killTimer);
    closed = true;
    notify();
  });

  const tail = (): string =>
    lines
      .slice(-20)
      .map((l) => `[${l.stream}] ${l.text}`)
      .join('\n');

  return {
    child,
    lines,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitForLine(re, wo = {}) {
      const stream = wo.stream ?? 'both';
      const timeoutMs = wo.timeoutMs ?? 10_000;
      let index = wo.since ?? 0;
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          for (; index < lines.length; index++) {
            const line = lines[index];
            if (line && (stream === 'both' || line.stream === stream) && re.test(line.text)) {
              finish();
              resolve(line.text);
              return;
            }
          }
          if (closed) {
            finish();
            reject(new Error(`process exited (code ${child.exitCode}) before printing ${re}; output tail:\n${tail()}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output tail:\n${tail()}`));
        }, timeoutMs);
        const finish = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      try {
        return await waitForExit(child, timeoutMs);
      } catch {
        child.kill('SIGKILL');
        return waitForExit(child, 5_000);
      }
    },
  };
}

/** Resolves when `child` has exited (immediately if it already has); rejects after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs = 10_000): Promise<ExitInfo> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal });
    };
    child.once('exit', onExit);
  });
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A failed test must not leave a worker process behind. */
function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}
