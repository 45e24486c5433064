import { readFileSync, statSync, type Stats } from 'node:fs';

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

/** What fileProblem found, thrown by readRegularFileSync; its message completes "the file …". */
export class NotReadableAsFile extends Error {}

/** A small file read synchronously (a client secret, a proxy CA), refused as fileProblem says. */
export function readRegularFileSync(file: string, maxBytes = 1024 * 1024): Buffer {
  const problem = fileProblem(statSync(file), maxBytes);
  if (problem) throw new NotReadableAsFile(problem);
  return readFileSync(file);
}
