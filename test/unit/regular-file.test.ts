/**
 * The bounded readers every JSON document, CRL, client secret and proxy CA is read through, on
 * real files: kernel pseudo-files (which stat as regular files of size 0, so size proves nothing)
 * are refused before they are opened, and an asynchronous read that does not answer is given up
 * without a second one being started for the same file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotReadableAsFile, readBounded, readBoundedSync, stuckReads } from '../../src/regular-file.js';
import { waitFor } from '../helpers/net.js';
import { holdThreadPool } from '../helpers/thread-pool.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-regular-file-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What `read` throws, which must be a NotReadableAsFile. */
async function refusal(read: () => unknown): Promise<NotReadableAsFile> {
  try {
    await read();
  } catch (error) {
    expect(error).toBeInstanceOf(NotReadableAsFile);
    return error as NotReadableAsFile;
  }
  return expect.fail('the file was read');
}

describe.runIf(process.platform === 'linux')('kernel pseudo-files', () => {
  it.each([
    ['/proc/self/pagemap', 'procfs'],
    ['/proc/self/status', 'procfs'],
    ['/sys/kernel/mm/transparent_hugepage/enabled', 'sysfs'],
  ])('%s is refused before it is opened, synchronously and not', async (file, fs) => {
    for (const read of [() => readBoundedSync(file, 8 * 2 ** 20), () => readBounded(file, 8 * 2 ** 20)]) {
      const error = await refusal(read);
      expect(error.reason).toBe('not-a-file');
      expect(error.message).toContain(`is a file of ${fs}`);
      expect(error.message).toContain('not a regular file');
    }
  });
});

describe('regular files', () => {
  it('are read up to maxBytes; one byte more is refused', async () => {
    const file = join(dir, 'ten.json');
    writeFileSync(file, '0123456789');
    expect(readBoundedSync(file, 10).toString()).toBe('0123456789');
    expect((await readBounded(file, 10)).toString()).toBe('0123456789');
    expect((await refusal(() => readBoundedSync(file, 9))).reason).toBe('too-large');
    expect((await refusal(() => readBounded(file, 9))).reason).toBe('too-large');
  });

  it('files bigger than one read(2) chunk arrive whole', async () => {
    const file = join(dir, 'big.json');
    const text = 'x'.repeat(300_000);
    writeFileSync(file, text);
    expect(readBoundedSync(file, 300_000).toString()).toBe(text);
    expect((await readBounded(file, 300_000)).toString()).toBe(text);
  });
});

describe('a read that does not answer in time', () => {
  it('is given up; the same file is refused at once while that read still waits, and read again once it is done', async () => {
    const file = join(dir, 'slow.json');
    writeFileSync(file, '{}');
    // Every libuv thread busy (as with reads stuck on a hung mount): the read waits for a thread.
    const busy = holdThreadPool();
    const first = await refusal(() => readBounded(file, 100, 50));
    expect(first.reason).toBe('timeout');
    expect(stuckReads()).toEqual([file]);
    const second = await refusal(() => readBounded(file, 100, 50));
    expect(second.reason).toBe('timeout');
    expect(second.message).toContain('still waiting');
    await busy;
    await waitFor(() => stuckReads().length === 0 || undefined, 10_000, 20, 'the given-up read to end');
    expect((await readBounded(file, 100, 5_000)).toString()).toBe('{}');
  }, 30_000);
});
