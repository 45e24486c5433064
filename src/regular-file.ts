import { closeSync, constants, fstatSync, openSync, readSync, statSync, statfsSync, type Stats } from 'node:fs';
import { open, stat, statfs } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Why a path given as a document, bundle, secret or CRL cannot be read as one, or undefined when
 * it can: it must be a regular file (symlinks followed, as mounted secrets are) of at most
 * `maxBytes`. Reading a FIFO blocks until something writes to it, a device like /dev/zero never
 * ends, a directory fails later with a vaguer error: all are refused before the file is opened.
 */
export function fileProblem(stats: Stats, maxBytes = Infinity): string | undefined {
  if (stats.isFile()) return stats.size > maxBytes ? `is ${stats.size} bytes, more than the ${maxBytes} allowed` : undefined;
  const kind = stats.isDirectory() ? 'a directory' : stats.isFIFO() ? 'a named pipe (FIFO)' : stats.isCharacterDevice() || stats.isBlockDevice() ? 'a device' : stats.isSocket() ? 'a socket' : 'not a file';
  return `is ${kind}, not a regular file`;
}

/** A cheap change detector of one file from its stats: size, mtime and inode (an atomic rename changes the inode). */
export function statsStamp(stats: Stats): string {
  return `${stats.size}:${stats.mtimeMs}:${stats.ino}`;
}

/** Why a file could not be read as one: what fileProblem found, a pseudo-file, more bytes than allowed, or no answer in time. */
export type UnreadableReason = 'not-a-file' | 'too-large' | 'timeout';

/** What fileProblem (or a bounded read) found, thrown by the readers here; its message completes "the file …". */
export class NotReadableAsFile extends Error {
  constructor(
    message: string,
    readonly reason: UnreadableReason = 'not-a-file',
  ) {
    super(message);
  }
}

/**
 * Linux filesystems whose files the kernel makes up as they are read (statfs(2) f_type): they
 * stat as regular files of size 0 whatever they hold, /proc/self/pagemap reads on for gigabytes
 * and /proc/kmsg blocks until the kernel logs something. Refused wherever they are mounted.
 */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'procfs (/proc)'],
  [0x62656572, 'sysfs (/sys)'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x62656570, 'configfs'],
  [0xde5e81e4, 'efivarfs'],
]);

function pseudoProblem(type: number): NotReadableAsFile | undefined {
  const fs = process.platform === 'linux' ? PSEUDO_FILESYSTEMS.get(type) : undefined;
  return fs === undefined ? undefined : new NotReadableAsFile(`is a file of ${fs}, made up by the kernel as it is read (its size says nothing), not a regular file`);
}

/** Opened without waiting (a FIFO put in place after the stat) and never as our terminal. */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);
/** Bytes asked of each read(2) at most. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The buffer for the next read: what the size said is left (plus the one byte that proves the
 * end), else a chunk. A start-up reads a thousand definitions at once: a 64 KiB buffer each for
 * files of a few hundred bytes held some 60 MB, which the worker kept as resident memory.
 */
function nextChunk(total: number, size: number, maxBytes: number): Buffer {
  const expected = size + 1 - total;
  return Buffer.allocUnsafe(Math.min(expected > 0 ? expected : CHUNK_BYTES, CHUNK_BYTES, maxBytes + 1 - total));
}

/** The file opened is the one judged: a rename in between must not swap a FIFO or device in. */
function sameFile(judged: Stats, opened: Stats): NotReadableAsFile | undefined {
  if (opened.isFile() && opened.dev === judged.dev && opened.ino === judged.ino) return undefined;
  return new NotReadableAsFile(fileProblem(opened) ?? 'was replaced while it was opened: read it again');
}

function tooLarge(maxBytes: number, judged: Stats): NotReadableAsFile {
  return new NotReadableAsFile(`holds more than the ${maxBytes} bytes allowed (its size said ${judged.size})`, 'too-large');
}

/**
 * Read a regular file of at most `maxBytes` synchronously, refused as fileProblem says and when
 * it is a pseudo-file (/proc, /sys, …). At most `maxBytes + 1` bytes are read whatever its size
 * says, so a file that grows, or lies about its size, cannot fill memory.
 */
export function readBoundedSync(file: string, maxBytes: number): Buffer {
  const judged = statSync(file);
  const problem = fileProblem(judged, maxBytes);
  if (problem) throw new NotReadableAsFile(problem, judged.isFile() ? 'too-large' : 'not-a-file');
  const pseudo = pseudoProblem(statfsSync(file).type);
  if (pseudo) throw pseudo;
  const fd = openSync(file, READ_FLAGS);
  try {
    const changed = sameFile(judged, fstatSync(fd));
    if (changed) throw changed;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = nextChunk(total, judged.size, maxBytes);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return Buffer.concat(chunks, total);
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw tooLarge(maxBytes, judged);
    }
  } finally {
    closeSync(fd);
  }
}

/** How long an asynchronous read may take before it is given up (a hung network or FUSE mount). @defaultValue 5 s */
export const READ_TIMEOUT_MS = 5_000;

/** Reads given up on that still hold one of libuv's four threads, by path: never a second one for the same file. */
const stuck = new Map<string, Promise<unknown>>();

async function readBoundedNow(file: string, maxBytes: number): Promise<Buffer> {
  const judged = await stat(file);
  const problem = fileProblem(judged, maxBytes);
  if (problem) throw new NotReadableAsFile(problem, judged.isFile() ? 'too-large' : 'not-a-file');
  const pseudo = pseudoProblem((await statfs(file)).type);
  if (pseudo) throw pseudo;
  const handle = await open(file, READ_FLAGS);
  try {
    const changed = sameFile(judged, await handle.stat());
    if (changed) throw changed;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = nextChunk(total, judged.size, maxBytes);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(maxBytes, judged);
    }
  } finally {
    await handle.close();
  }
}

/**
 * readBoundedSync without blocking the event loop, given up after `timeoutMs`: a file whose
 * filesystem does not answer cannot stall a reload round (or start-up) for good. The read given
 * up goes on holding a libuv thread until the kernel answers; until then the same file is refused
 * at once rather than read again, so one stuck file holds at most one thread.
 */
export async function readBounded(file: string, maxBytes: number, timeoutMs: number = READ_TIMEOUT_MS): Promise<Buffer> {
  const key = resolve(file);
  if (stuck.has(key)) throw new NotReadableAsFile(`did not answer a read within ${timeoutMs} ms, and that read is still waiting`, 'timeout');
  return givenUpAfter(readBoundedNow(file, maxBytes), timeoutMs, new NotReadableAsFile(`did not answer a read within ${timeoutMs} ms`, 'timeout'), (read) => {
    stuck.set(key, read);
    return () => stuck.delete(key);
  });
}

/**
 * `work`, or `late` thrown once `timeoutMs` has passed. A filesystem operation cannot be
 * cancelled: the one given up goes on holding a libuv thread. `onGivenUp` hears of it then (to
 * refuse another meanwhile) and returns what to do once it ends.
 */
export async function givenUpAfter<T>(work: Promise<T>, timeoutMs: number, late: Error, onGivenUp: (work: Promise<T>) => () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const ended = onGivenUp(work);
      work.then(ended, ended);
      reject(late);
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Files whose read was given up and still holds a libuv thread. process.exit() joins those
 * threads, so a process with one would wait for the kernel forever on its way out.
 */
export function stuckReads(): string[] {
  return [...stuck.keys()];
}

/** A small file read synchronously (a client secret, a proxy CA), refused as readBoundedSync says. */
export function readRegularFileSync(file: string, maxBytes = 1024 * 1024): Buffer {
  return readBoundedSync(file, maxBytes);
}
