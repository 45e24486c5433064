import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import type https from 'node:https';
import { resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { InvalidInputError } from '../errors.js';
import { AgentPool, type AgentPoolOptions, type AgentSpec } from './agents.js';

/** A new key log: created here and now, never a name that exists (a symlink included), owner-only. */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
/** An existing key log: never through a symlink, and without waiting on a FIFO that has no reader. */
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

function cannotOpen(path: string, cause: unknown): InvalidInputError {
  return new InvalidInputError('SVCNODE_KEYLOG_FILE', `cannot open key log file ${path} for appending`, { cause, file: path, hint: 'pass a writable path for --keylog' });
}

/** What the stderr warning says: the file is as sensitive as the traffic it decrypts. */
export const KEYLOG_WARNING =
  'writes TLS session secrets (NSS key log format): anyone who can read it can decrypt every captured byte of these connections, request headers, tokens and bodies included; delete it when the capture has been read';

/** An open NSS key-log file (the `SSLKEYLOGFILE` format Wireshark reads), owner-only, appended to. */
export class KeylogFile {
  private fd: number | undefined;
  /** Lines written so far. */
  lines = 0;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /**
   * Open FILE for appending. A new file is created with mode 0600 (O_EXCL: never one that
   * appeared meanwhile). An existing file is appended to only when it is this process's own
   * regular file, with one link, that group and others cannot read or write: in a shared
   * directory (/tmp) another user may have put the name there first, as a file of theirs, a
   * symlink (O_NOFOLLOW) or a hard link to elsewhere, to be handed the secrets.
   */
  static open(file: string): KeylogFile {
    const path = resolve(file);
    const refuse = (what: string, hint = `pass a new file name: svcnode creates it with mode 0600`): InvalidInputError => new InvalidInputError('SVCNODE_KEYLOG_FILE', `key log file ${path} ${what}`, { file: path, hint });
    let fd: number;
    try {
      fd = openSync(path, CREATE_FLAGS, 0o600);
      return new KeylogFile(path, fd);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotOpen(path, cause);
    }
    try {
      fd = openSync(path, APPEND_FLAGS);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'EMLINK') throw refuse('is a symbolic link: it is not followed (it could lead to any file, another user\'s included)', 'pass the path of the file itself, or a new file name: svcnode creates it with mode 0600');
      if (code === 'ENXIO') throw refuse('is a named pipe (FIFO) or a socket, not a regular file');
      throw cannotOpen(path, cause);
    }
    const stat = fstatSync(fd);
    const uid = process.getuid?.();
    const problem = !stat.isFile()
      ? 'is not a regular file'
      : uid !== undefined && stat.uid !== uid
        ? `belongs to another user (uid ${stat.uid}, this process runs as uid ${uid}): its owner could read the secrets appended to it`
        : (stat.mode & 0o077) !== 0
          ? `is readable or writable by others (mode ${(stat.mode & 0o777).toString(8)})`
          : stat.nlink > 1
            ? `has ${stat.nlink} hard links: the secrets would be readable under another name too`
            : undefined;
    if (problem) {
      closeSync(fd);
      throw refuse(problem, problem.startsWith('is readable') ? `run \`chmod 600 ${path}\` or pass a new file name: svcnode creates it with mode 0600` : undefined);
    }
    return new KeylogFile(path, fd);
  }

  /** Append one line as Node hands it over (`LABEL client_random secret\n`). */
  readonly write = (line: Buffer): void => {
    if (this.fd === undefined) return;
    writeSync(this.fd, line.at(-1) === 0x0a ? line : Buffer.concat([line, Buffer.from('\n')]));
    this.lines++;
  };

  /** Log the key material of one TLS socket. */
  readonly attach = (socket: TLSSocket): void => {
    socket.on('keylog', this.write);
  };

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The agent pool of a dry-run with `--keylog`: every connection of every agent is logged. */
export class KeylogAgentPool extends AgentPool {
  private readonly hooked = new WeakSet<https.Agent>();

  constructor(
    private readonly keylog: KeylogFile,
    options: AgentPoolOptions = {},
  ) {
    super(options);
  }

  override get(spec: AgentSpec): https.Agent {
    const agent = super.get(spec);
    if (!this.hooked.has(agent)) {
      this.hooked.add(agent);
      // https.Agent re-emits each of its sockets' 'keylog' events (installed when the socket is created).
      agent.on('keylog', this.keylog.write);
    }
    return agent;
  }
}

/**
 * The worker never writes key logs: `--keylog`, or Node's own `--tls-keylog` in NODE_OPTIONS or
 * on the command line, would leak the secrets of production traffic to a file.
 */
export function refuseKeylogInWorker(option: string | undefined, env: NodeJS.ProcessEnv, execArgv: readonly string[] = process.execArgv): void {
  const nodeFlag = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--tls-keylog'));
  if (option === undefined && !nodeFlag) return;
  throw new InvalidInputError('SVCNODE_USAGE', `${option === undefined ? "Node's --tls-keylog" : '--keylog'} is refused by svcnode worker: key logs are a dry-run diagnostic, never a production switch`, {
    hint: option === undefined ? 'remove --tls-keylog from NODE_OPTIONS and the node command line' : 'reproduce the call with `svcnode dry-run NODE.json --keylog FILE` instead',
  });
}
