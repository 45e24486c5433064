/**
 * A throwaway `redis-server` per test file: own temp dir, own port, no RDB snapshots, optional
 * AOF with `appendfsync always` so a SIGKILL loses nothing that was acknowledged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOOPBACK, freePort } from './net.js';

export interface RedisOptions {
  /** `--appendonly yes` with `--appendfsync always`. @defaultValue false */
  appendonly?: boolean;
  /** e.g. `noeviction` (what BullMQ wants). @defaultValue redis-server's own (noeviction) */
  maxmemoryPolicy?: string;
  /** Listen on this port instead of a free one (Redis Cluster needs port + 10000 free too). */
  port?: number;
  /** A config file written into the server's dir and passed first (Sentinel needs one it can rewrite). */
  config?: string;
  /** More command-line options, e.g. `['--cluster-enabled', 'yes']` or `['--sentinel']`. */
  args?: string[];
}

export interface TestRedis {
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Working directory holding the AOF; survives `stop()`, `kill()` and `restart()`. */
  readonly dir: string;
  /** SIGTERM (a clean SHUTDOWN, flushing the AOF) and waits for exit. The dir is kept. */
  stop(): Promise<void>;
  /** SIGKILL, no wait: simulates a crash. `restart()` waits for the exit. */
  kill(): void;
  /** Starts again on the same port and dir (so AOF data survives); stops a running server first. */
  restart(): Promise<void>;
  /** Stops the server and removes its dir. Idempotent. */
  close(): Promise<void>;
  /** redis-server's log output of the current process (for failure messages). */
  log(): string;
}

const live = new Set<{ child?: ChildProcess; dir: string }>();
let exitHookInstalled = false;

/** Safety net for a test that forgets `close()`: no orphan redis-server, no stray temp dir. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { child, dir } of live) {
      if (child && isRunning(child)) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Spawns `redis-server` on a free loopback port; resolves once it answers PING. */
export async function startRedis(o: RedisOptions = {}): Promise<TestRedis> {
  installExitHook();
  const dir = mkdtempSync(path.join(tmpdir(), 'svcnode-redis-'));
  const entry: { child?: ChildProcess; dir: string } = { dir };

  let port = 0;
  let current: Running | undefined;
  let lastError: unknown;
  // The port is picked before redis binds it; retry if someone else took it in between.
  for (let attempt = 0; attempt < 3 && !current; attempt++) {
    port = o.port ?? (await freePort());
    try {
      current = await launch(port, dir, o);
    } catch (err) {
      lastError = err;
      if (!(err instanceof Error && /in use|bind/i.test(err.message))) break;
    }
  }
  if (!current) {
    rmSync(dir, { recursive: true, force: true });
    throw lastError;
  }
  entry.child = current.child;
  live.add(entry);

  let closed: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    if (current) await terminate(current);
  };
  return {
    url: `redis://${LOOPBACK}:${port}`,
    host: LOOPBACK,
    port,
    dir,
    stop,
    kill: () => {
      if (current && isRunning(current.child)) current.child.kill('SIGKILL');
    },
    restart: async () => {
      if (current) await terminate(current);
      // A restart right after SIGKILL can race the kernel releasing the port: retry briefly.
      for (let attempt = 0; ; attempt++) {
        try {
          current = await launch(port, dir, o);
          entry.child = current.child;
          return;
        } catch (err) {
          if (attempt >= 20 || !(err instanceof Error && /in use|bind/i.test(err.message))) throw err;
          await sleep(100);
        }
      }
    },
    close: () =>
      (closed ??= (async () => {
        await stop();
        live.delete(entry);
        rmSync(dir, { recursive: true, force: true });
      })()),
    log: () => current?.log() ?? '',
  };
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  log(): string;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function redisArgs(port: number, dir: string, o: RedisOptions): string[] {
  const config = o.config === undefined ? [] : [path.join(dir, 'redis.conf')];
  if (o.config !== undefined && !existsSync(config[0] as string)) writeFileSync(config[0] as string, o.config);
  const args = [
    ...config,
    '--port', String(port),
    '--bind', LOOPBACK,
    '--dir', dir,
    '--save', '',
    '--daemonize', 'no',
    '--logfile', '',
    '--appendonly', o.appendonly ? 'yes' : 'no',
  ];
  if (o.appendonly) args.push('--appendfsync', 'always');
  if (o.maxmemoryPolicy) args.push('--maxmemory-policy', o.maxmemoryPolicy);
  args.push(...(o.args ?? []));
  return args;
}

async function launch(port: number, dir: string, o: RedisOptions): Promise<Running> {
  const child = spawn('redis-server', redisArgs(port, dir, o), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const onData = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running: Running = { child, exited, log: () => out };

  const spawnError = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new Error('redis-server not found on PATH (apt-get install -y redis-server)', { cause: err })
          : err,
      );
    });
  });
  const earlyExit = exited.then(() => {
    throw new Error(`redis-server exited during startup (code ${child.exitCode}):\n${out}`);
  });

  const deadline = Date.now() + 10_000;
  const ready = (async () => {
    while (isRunning(child)) {
      if (await ping(port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s:\n${out}`);
      await sleep(20);
    }
  })();

  try {
    await Promise.race([ready, spawnError, earlyExit]);
  } catch (err) {
    await terminate(running);
    throw err;
  } finally {
    // Whichever lost the race must not surface as an unhandled rejection.
    spawnError.catch(() => undefined);
    earlyExit.catch(() => undefined);
  }
  if (!isRunning(child)) throw new Error(`redis-server exited during startup:\n${out}`);
  return running;
}

async function terminate(r: Running, graceMs = 5_000): Promise<void> {
  if (isRunning(r.child)) {
    r.child.kill('SIGTERM');
    const timer = setTimeout(() => r.child.kill('SIGKILL'), graceMs);
    await r.exited;
    clearTimeout(timer);
  } else {
    await r.exited;
  }
}

/** Sends a raw RESP PING; true on `+PONG` (or `-NOAUTH` from a server with a password). Avoids a client library dependency in the helper. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, LOOPBACK);
    let buf = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH')); // a password-protected server is up too
    });
  });
}
