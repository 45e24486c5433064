import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { givenUpAfter, NotReadableAsFile, READ_TIMEOUT_MS, statsStamp } from '../regular-file.js';

/** The statsStamp of one file (size, mtime, inode); undefined when it is gone. */
export async function fileStamp(file: string): Promise<string | undefined> {
  try {
    return statsStamp(await stat(file));
  } catch {
    return undefined;
  }
}

/** The `*.json` files (any case) of a directory, sorted by name, as absolute paths; throws when it cannot be read. */
async function jsonFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.toLowerCase().endsWith('.json')).sort().map((f) => join(dir, f));
}

/**
 * Polls in a row that must fail to read a directory before its files are judged removed. One
 * failed poll alone is not acted on: a secrets manager's symlink swap that is not atomic
 * (`ln -sfn` unlinks, then links) leaves the name missing for a moment, and taking every profile
 * out of use for a poll interval would fail every call meanwhile. Two take 1–2 intervals.
 */
export const UNREADABLE_POLLS = 2;

/** errno codes of a process short of file descriptors or memory: they say nothing of the directory or file read. */
const RESOURCE_ERRNOS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EINTR']);

/**
 * Whether a read failed for a reason the next poll may not meet: the process out of file
 * descriptors or memory (a worker with many connections open), or a read given up for time (a
 * hung mount). That is no verdict on the directory or the file: nothing in use goes out of use
 * for it (which would fail every call meanwhile), and the next poll reads again.
 */
export function transientReadFailure(error: unknown): boolean {
  let e = error;
  for (let depth = 0; depth < 8 && e !== null && typeof e === 'object'; depth++) {
    if (e instanceof NotReadableAsFile && e.reason === 'timeout') return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RESOURCE_ERRNOS.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** A directory listing that did not answer within READ_TIMEOUT_MS (a hung network or FUSE mount). */
function listingTimeout(dir: string): NotReadableAsFile {
  return new NotReadableAsFile(`listing ${dir} did not answer within ${READ_TIMEOUT_MS} ms (a hung mount?)`, 'timeout');
}

/** What a directory that cannot be read means for the worker, naming it, its errno code and what to do. */
export function unreadableDirectoryError(kind: 'node' | 'profile', dir: string, cause: unknown): InvalidInputError {
  const errno = (cause as { code?: unknown } | null)?.code;
  const what = kind === 'node' ? 'nodes' : 'profiles';
  const option = kind === 'node' ? '--nodes (SVCNODE_NODES)' : '--profiles (SVCNODE_PROFILES)';
  const hint = `restore the directory (or its mount, or its permissions), or point ${option} at the right one and restart`;
  return new InvalidInputError(
    'SVCNODE_FILE_NOT_FOUND',
    `${dir}: the ${what} directory cannot be read${typeof errno === 'string' ? ` (${errno})` : ''}: every ${kind} of it is out of use until it can be read again; ${hint}`,
    { cause, file: dir, hint },
  );
}

/** A listing that failed for a transient reason (transientReadFailure): what is in use stays in use. */
function transientListingError(kind: 'node' | 'profile', dir: string, cause: unknown): Error {
  const errno = (cause as { code?: unknown } | null)?.code;
  const why = typeof errno === 'string' ? `${errno}: the process is short of file descriptors or memory` : cause instanceof Error ? cause.message : String(cause);
  return new Error(`${dir}: the ${kind === 'node' ? 'nodes' : 'profiles'} directory could not be listed (${why}); every ${kind} in use stays in use, and each poll tries again`, { cause });
}

/** What a DirPoller's owner hears besides the files' own events. */
export interface DirectoryEvents {
  /**
   * The directory cannot be read (removed, renamed, unmounted) on consecutive polls: every file of
   * it goes out of use. Without this handler the error goes to `error`, so it is logged all the same.
   */
  unreadable?(dir: string, error: InvalidInputError): void;
  /** The directory can be read again after `unreadable`; its files load as new ones. */
  readable?(dir: string): void;
  /**
   * A polling round failed for a reason of its own (a defect), or the directory could not be listed
   * for a transient reason (transientReadFailure: said once per run): logged, the next round runs as usual.
   */
  error(error: unknown): void;
}

/**
 * A directory of `*.json` files (any case) polled on an interval, which editors, atomic renames
 * and mounted-secret symlink swaps cannot fool the way they fool fs.watch. Subclasses judge each
 * round. Rounds never overlap, and one that throws is a defect reported through `onError`, never
 * an unhandled rejection that would end the worker.
 */
export abstract class DirPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Polls in a row that could not read the directory. */
  private failedPolls = 0;
  /** A listing given up for time that still holds a libuv thread: no second one is started meanwhile. */
  private stuckListing: Promise<unknown> | undefined;
  /** Whether the current run of transient listing failures has been reported. */
  private transientReported = false;

  /**
   * `kind` names what the directory holds; `directoryEvents` hears of a round that failed (a defect) and of
   * the directory becoming unreadable (else through `error`) and readable again; `setProblem`
   * records the unreadable directory where /healthz reads it (the registry).
   */
  protected constructor(
    private readonly intervalMs: number,
    private readonly kind: 'node' | 'profile',
    private readonly directoryEvents: DirectoryEvents,
    private readonly setProblem: (kind: 'node' | 'profile', error: InvalidInputError | undefined) => void,
  ) {}

  /** The directory polled. */
  protected abstract dir(): string;

  /** One round: compare the files with what was seen, and act on the differences. */
  protected abstract round(): Promise<void>;

  /** The directory could not be read on UNREADABLE_POLLS polls in a row (`cause`: the last error); once, before the round judges every file removed. */
  private directoryUnreadable(cause: unknown): void {
    const error = unreadableDirectoryError(this.kind, this.dir(), cause);
    this.setProblem(this.kind, error);
    if (this.directoryEvents.unreadable) this.directoryEvents.unreadable(this.dir(), error);
    else this.directoryEvents.error(error);
  }

  /** The directory can be read again after directoryUnreadable; before the round loads its files. */
  private directoryReadable(): void {
    this.setProblem(this.kind, undefined);
    this.directoryEvents.readable?.(this.dir());
  }

  /** Run a round every `intervalMs` from now on, without keeping the process alive. */
  protected startPolling(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The directory's JSON files now, for a baseline; undefined when it cannot be read. */
  protected async files(): Promise<string[] | undefined> {
    return jsonFiles(this.dir()).catch(() => undefined);
  }

  /**
   * The directory's JSON files for a round. A directory that cannot be read (removed, renamed,
   * unmounted, its permissions changed) never reads as "no change", which kept every file's
   * definition in use with a healthy status: from the UNREADABLE_POLLS-th failed poll in a row it
   * reads as empty, so every file is judged removed. Before that, undefined: skip the round.
   */
  protected async listing(): Promise<string[] | undefined> {
    try {
      const files = await this.listWithin(READ_TIMEOUT_MS);
      if (this.failedPolls >= UNREADABLE_POLLS) this.directoryReadable();
      this.failedPolls = 0;
      this.transientReported = false;
      return files;
    } catch (cause) {
      if (transientReadFailure(cause)) {
        // Not counted towards UNREADABLE_POLLS: the round is skipped, what is in use stays, said once per run.
        if (!this.transientReported) this.directoryEvents.error(transientListingError(this.kind, this.dir(), cause));
        this.transientReported = true;
        return undefined;
      }
      this.failedPolls++;
      if (this.failedPolls < UNREADABLE_POLLS) return undefined;
      if (this.failedPolls === UNREADABLE_POLLS) this.directoryUnreadable(cause);
      return [];
    }
  }

  /**
   * jsonFiles, given up after `timeoutMs`: a directory on a hung mount must not stall every later
   * round. The listing given up goes on holding a libuv thread until the kernel answers; until then
   * no other listing is started (each would take one more of the pool's four threads, which DNS
   * lookups need too), and the poll reads as timed out.
   */
  private async listWithin(timeoutMs: number): Promise<string[]> {
    if (this.stuckListing) throw listingTimeout(this.dir());
    return givenUpAfter(jsonFiles(this.dir()), timeoutMs, listingTimeout(this.dir()), (listing) => {
      this.stuckListing = listing;
      return () => {
        if (this.stuckListing === listing) this.stuckListing = undefined;
      };
    });
  }

  /** One polling round now; concurrent calls share the round in progress. Never rejects. */
  check(): Promise<void> {
    this.running ??= this.round()
      .catch((error: unknown) => {
        this.directoryEvents.error(error);
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
