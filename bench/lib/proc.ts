import { fork, spawn, type ChildProcess, type ForkOptions, type SpawnOptions } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Every child process the bench starts is tracked here and killed on any exit path: normal end,
 * an exception, SIGINT/SIGTERM, or the global watchdog. Children the bench owns (backend, naive
 * worker, raw client) also exit by themselves when the IPC channel to this process closes.
 */
const children = new Set<ChildProcess>();
const exitHooks: (() => void)[] = [];
let installed = false;

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const hook of exitHooks.splice(0)) {
    try {
      hook();
    } catch {
      // best effort
    }
  }
}

/** Install the exit handlers once; `onExit` runs synchronously after children are killed. */
export function installCleanup(onExit?: () => void): void {
  if (onExit) exitHooks.push(onExit);
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children\n`);
      killAll();
      process.exit(130);
    });
  }
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, options));
}

export function forkTracked(script: string, args: string[], options: ForkOptions): ChildProcess {
  return track(fork(script, args, options));
}

/** Resolve with the first stdout/stderr line (parsed JSON) that satisfies `match`. */
export function waitForJsonLine<T>(child: ChildProcess, stream: 'stdout' | 'stderr', match: (line: Record<string, unknown>) => boolean, timeoutMs: number, label: string): Promise<T> {
  const source = child[stream];
  if (!source) return Promise.reject(new Error(`${label}: ${stream} is not piped`));
  return new Promise<T>((resolve, reject) => {
    const tail: string[] = [];
    const rl = createInterface({ input: source });
    const done = (error: Error | undefined, value?: T): void => {
      clearTimeout(timer);
      rl.removeListener('line', onLine);
      child.removeListener('exit', onExit);
      if (error) reject(error);
      else resolve(value as T);
    };
    const onLine = (line: string): void => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return;
      }
      if (parsed && typeof parsed === 'object' && match(parsed as Record<string, unknown>)) done(undefined, parsed as T);
    };
    const onExit = (code: number | null, signal: string | null): void => done(new Error(`${label} exited (code ${code}, signal ${signal}) before it was ready:\n${tail.join('\n')}`));
    const timer = setTimeout(() => done(new Error(`${label}: not ready within ${timeoutMs} ms:\n${tail.join('\n')}`)), timeoutMs);
    rl.on('line', onLine);
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** VmRSS of a live process in bytes (Linux /proc). */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Children the bench owns call this: exit when the parent goes away. */
export function exitWithParent(): void {
  process.on('disconnect', () => process.exit(0));
}

/** CPU time (user + system) of a /proc stat file, in ms (10 ms ticks). */
async function statCpuMs(file: string): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU time (user + system) a live process has used so far, in ms (Linux /proc, 10 ms ticks). */
export function cpuMsOf(pid: number): Promise<number> {
  return statCpuMs(`/proc/${pid}/stat`);
}

/**
 * CPU time a live process has used off its main thread so far, in ms: in a Node process that makes
 * keep-alive calls, V8's helper threads (parallel scavenges, concurrent marking, compiler jobs).
 */
export async function offMainCpuMsOf(pid: number): Promise<number> {
  const [all, main] = await Promise.all([statCpuMs(`/proc/${pid}/stat`), statCpuMs(`/proc/${pid}/task/${pid}/stat`)]);
  return all - main;
}

/** A port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The first IPC message of `child` that `match`es; rejects when it exits or times out first. */
export function onceMessage<T>(child: ChildProcess, match: (m: Record<string, unknown>) => boolean, timeoutMs: number, label: string): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const onMessage = (m: unknown): void => {
      if (m && typeof m === 'object' && match(m as Record<string, unknown>)) done(undefined, m as T);
    };
    const onExit = (code: number | null): void => done(new Error(`${label} exited with code ${code}`));
    const timer = setTimeout(() => done(new Error(`${label}: no answer within ${timeoutMs} ms`)), timeoutMs);
    function done(error: Error | undefined, value?: T): void {
      clearTimeout(timer);
      child.removeListener('message', onMessage);
      child.removeListener('exit', onExit);
      if (error) reject(error);
      else resolvePromise(value as T);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}
