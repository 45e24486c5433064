import type { Stats } from 'node:fs';

/**
 * Why a path given as a document, bundle or CRL cannot be read as one, or undefined when it can:
 * it must be a regular file (symlinks followed, as mounted secrets are). Reading a FIFO blocks
 * until something writes to it, a device like /dev/zero never ends, a directory fails later with
 * a vaguer error: all three are refused before the file is opened.
 */
export function notRegular(stats: Stats): string | undefined {
  if (stats.isFile()) return undefined;
  const kind = stats.isDirectory() ? 'a directory' : stats.isFIFO() ? 'a named pipe (FIFO)' : stats.isCharacterDevice() || stats.isBlockDevice() ? 'a device' : stats.isSocket() ? 'a socket' : 'not a file';
  return `is ${kind}, not a regular file`;
}
