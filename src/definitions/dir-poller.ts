import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { statsStamp } from '../regular-file.js';

/** The statsStamp of one file (size, mtime, inode); undefined when it is gone. */
export async function fileStamp(file: string): Promise<string | undefined> {
  try {
    return statsStamp(await stat(file));
  } catch {
    return undefined;
  }
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

  protected constructor(
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** The directory polled. */
  protected abstract dir(): string;

  /** One round: compare the files with what was seen, and act on the differences. */
  protected abstract round(): Promise<void>;

  /** Run a round every `intervalMs` from now on, without keeping the process alive. */
  protected startPolling(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The directory's JSON files now; undefined when it cannot be read (then nothing is judged removed). */
  protected async files(): Promise<string[] | undefined> {
    const dir = this.dir();
    try {
      return (await readdir(dir)).filter((f) => f.toLowerCase().endsWith('.json')).sort().map((f) => join(dir, f));
    } catch {
      return undefined;
    }
  }

  /** One polling round now; concurrent calls share the round in progress. Never rejects. */
  check(): Promise<void> {
    this.running ??= this.round()
      .catch((error: unknown) => {
        this.onError(error);
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
