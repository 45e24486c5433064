import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import type https from 'node:https';
import { resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { InvalidInputError } from '../errors.js';
import { AgentPool, type AgentPoolOptions, type AgentSpec } from './agents.js';

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
   * Open FILE for appending, creating it with mode 0600. An existing file that group or others
   * can read is refused: appending secrets to it would hand them out.
   */
  static open(file: string): KeylogFile {
    const path = resolve(file);
    let fd: number;
    try {
      fd = openSync(path, 'a', 0o600);
    } catch (cause) {
      throw new InvalidInputError('SVCNODE_KEYLOG_FILE', `cannot open key log file ${path} for appending`, { cause, file: path, hint: 'pass a writable path for --keylog' });
    }
    const stat = fstatSync(fd);
    if (!stat.isFile() || (stat.mode & 0o077) !== 0) {
      closeSync(fd);
      throw new InvalidInputError(
        'SVCNODE_KEYLOG_FILE',
        `key log file ${path} is ${stat.isFile() ? `readable or writable by others (mode ${(stat.mode & 0o777).toString(8)})` : 'not a regular file'}`,
        { file: path, hint: `run \`chmod 600 ${path}\` or pass a new file name: svcnode creates it with mode 0600` },
      );
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
