/**
 * A worker process out of file descriptors (many connections open, a low `ulimit -n`): listing the
 * nodes directory then fails with EMFILE, which says nothing about the directory. Before, two such
 * polls took every node out of use (every job answered invalid_input until descriptors were free
 * again), and a new file whose read failed with EMFILE was not read again until it changed.
 * A listing on a hung mount is given up the same way. The built NodeWatcher runs in a child
 * process whose descriptor limit (or libuv thread pool) is small, with real files.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distModule, outputOf, poolBusyFor } from '../helpers/child-script.js';
import { createTestPki } from '../helpers/pki.js';


/**
 * The child: a watcher over `nodes`, then every descriptor but one taken. The first round's
 * listing takes the last one; `bad.json` fails (a JSON error) and its `failed` event takes the
 * last descriptor, so `fresh.json`, read next, meets EMFILE. Two more rounds meet EMFILE at the
 * listing. Then the descriptors are freed and one more round runs.
 */
const CHILD = `
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from '${distModule('definitions/registry.js')}';
import { NodeWatcher } from '${distModule('definitions/node-watcher.js')}';
const [nodes, profiles] = process.argv.slice(1);
const node = (id) => JSON.stringify({ id, request: { method: 'GET', url: 'https://backend.example:8443/' + id }, tls: { profile: 'bank' } });
const registry = await Registry.load(nodes, profiles);
const seen = [];
const fds = [];
let grab = false;
const watcher = new NodeWatcher(registry, {
  loaded: (file, n) => seen.push('loaded ' + n.id),
  failed: (file, error) => {
    seen.push('failed ' + file.replace(/^.*\\//, '') + ' ' + error.code + (/EMFILE/.test(String(error.cause?.code ?? error.message)) ? ' EMFILE' : ''));
    if (grab) { grab = false; fds.push(openSync('/dev/null', 'r')); }
  },
  removed: (file, id) => seen.push('removed ' + (id ?? '-')),
  unreadable: () => seen.push('unreadable'),
  error: (error) => seen.push('error ' + error.message),
}, { intervalMs: 3600000 });
await watcher.start();
writeFileSync(join(nodes, 'bad.json'), '{not json');
writeFileSync(join(nodes, 'fresh.json'), node('fresh'));
try { for (;;) fds.push(openSync('/dev/null', 'r')); } catch (error) { if (error.code !== 'EMFILE') throw error; }
closeSync(fds.pop());
grab = true;
await watcher.check();
await watcher.check();
await watcher.check();
const during = { seen: [...seen], inUse: [...registry.nodes.keys()].sort() };
for (const fd of fds) closeSync(fd);
seen.length = 0;
await watcher.check();
watcher.stop();
process.stdout.write(JSON.stringify({ during, after: { seen, inUse: [...registry.nodes.keys()].sort() } }));
`;

/**
 * The child for a hung mount: libuv's one thread (UV_THREADPOOL_SIZE=1) kept busy ~9 s, as a read
 * stuck on a hung NFS or FUSE mount keeps it. A round's listing is given up after READ_TIMEOUT_MS
 * (5 s); the next round starts no second listing while that one waits; once the thread is free,
 * rounds list again.
 */
const HUNG_CHILD = `
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from '${distModule('definitions/registry.js')}';
import { NodeWatcher } from '${distModule('definitions/node-watcher.js')}';
const [nodes, profiles] = process.argv.slice(1);
const registry = await Registry.load(nodes, profiles);
const seen = [];
const watcher = new NodeWatcher(registry, {
  loaded: (file, n) => seen.push('loaded ' + n.id),
  failed: (file, error) => seen.push('failed ' + error.message),
  removed: (file, id) => seen.push('removed ' + (id ?? '-')),
  unreadable: () => seen.push('unreadable'),
  error: (error) => seen.push('error ' + error.message),
}, { intervalMs: 3600000 });
await watcher.start();
writeFileSync(join(nodes, 'fresh.json'), JSON.stringify({ id: 'fresh', request: { method: 'GET', url: 'https://backend.example:8443/fresh' }, tls: { profile: 'bank' } }));
${poolBusyFor(9_000)}
let started = performance.now();
await watcher.check();
const firstMs = performance.now() - started;
started = performance.now();
await watcher.check();
const secondMs = performance.now() - started;
const during = { seen: [...seen], inUse: [...registry.nodes.keys()].sort(), firstMs, secondMs };
await busy;
await new Promise((resolve) => setTimeout(resolve, 100));
seen.length = 0;
await watcher.check();
watcher.stop();
process.stdout.write(JSON.stringify({ during, after: { seen, inUse: [...registry.nodes.keys()].sort() } }));
`;

/**
 * The child for profiles: the same EMFILE round over a profiles directory. `bad.json` fails (not
 * JSON) and its `failed` event takes the last descriptor, so `fresh.json`, a good profile read
 * next, meets EMFILE; once descriptors are free, the next round loads it without it changing.
 * (Here the profile document itself could not be read, so the change detector had not seen the
 * files it names yet either; the watcher also forgets a profile whose load failed that way.)
 */
const PROFILE_CHILD = `
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from '${distModule('definitions/registry.js')}';
import { ProfileWatcher } from '${distModule('definitions/profile-watcher.js')}';
const [nodes, profiles, freshDoc] = process.argv.slice(1);
const registry = await Registry.load(nodes, profiles);
const seen = [];
const fds = [];
let grab = false;
const watcher = new ProfileWatcher(registry, {
  reloaded: (profile) => seen.push('reloaded ' + profile.name),
  failed: (name, file, error) => {
    seen.push('failed ' + name + ' ' + error.code + (/EMFILE/.test(String(error.cause?.code ?? error.message)) ? ' EMFILE' : ''));
    if (grab) { grab = false; fds.push(openSync('/dev/null', 'r')); }
  },
  removed: (name) => seen.push('removed ' + name),
  unreadable: () => seen.push('unreadable'),
  error: (error) => seen.push('error ' + error.message),
}, { intervalMs: 3600000 });
await watcher.start();
writeFileSync(join(profiles, 'bad.json'), '{not json');
writeFileSync(join(profiles, 'fresh.json'), freshDoc);
try { for (;;) fds.push(openSync('/dev/null', 'r')); } catch (error) { if (error.code !== 'EMFILE') throw error; }
closeSync(fds.pop());
grab = true;
await watcher.check();
const during = { seen: [...seen], inUse: [...registry.profiles.keys()].sort() };
for (const fd of fds) closeSync(fd);
seen.length = 0;
await watcher.check();
watcher.stop();
process.stdout.write(JSON.stringify({ during, after: { seen, inUse: [...registry.profiles.keys()].sort() } }));
`;

interface ChildReport {
  during: { seen: string[]; inUse: string[]; firstMs?: number; secondMs?: number };
  after: { seen: string[]; inUse: string[] };
}

/** Run a child script over a nodes directory holding `keep.json`; `shell` sets its limits before node starts. */
async function runChild(dir: string, script: string, shell: string): Promise<ChildReport> {
  const nodes = join(dir, 'nodes');
  const profiles = join(dir, 'profiles');
  mkdirSync(nodes, { recursive: true });
  mkdirSync(profiles);
  writeFileSync(join(nodes, 'keep.json'), JSON.stringify({ id: 'keep', request: { method: 'GET', url: 'https://backend.example:8443/keep' }, tls: { profile: 'bank' } }));
  const out = await outputOf('bash', ['-c', `${shell} && exec "$0" --input-type=module -e "$1" "$2" "$3"`, process.execPath, script, nodes, profiles], { timeoutMs: 40_000 });
  return JSON.parse(out) as ChildReport;
}

describe.runIf(process.platform === 'linux')('a worker out of file descriptors', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-emfile-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps its nodes in use, says so once, and reads a file that met EMFILE again next round', async () => {
    const { during, after } = await runChild(join(dir, 'emfile'), CHILD, 'ulimit -n 128');
    // Before: "unreadable", then "removed keep": every job of the worker answered invalid_input.
    expect(during.inUse).toEqual(['keep']);
    expect(during.seen.filter((s) => s.startsWith('error '))).toHaveLength(1);
    expect(during.seen).toEqual([
      'failed bad.json SVCNODE_INVALID_DEFINITION',
      'failed fresh.json SVCNODE_FILE_NOT_FOUND EMFILE',
      expect.stringMatching(/nodes directory could not be listed \(EMFILE: the process is short of file descriptors or memory\); every node in use stays in use/) as unknown,
    ]);
    // Before: fresh.json's stamp was taken as judged, and it stayed unloaded until the file changed.
    expect(after.seen).toEqual(['loaded fresh']);
    expect(after.inUse).toEqual(['fresh', 'keep']);
  }, 40_000);

  it('reads a profile whose load met EMFILE again next round (before: not until its files changed)', async () => {
    const pki = await createTestPki();
    try {
      const base = join(dir, 'profiles-emfile');
      const freshDoc = JSON.stringify({ client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root] } });
      const nodes = join(base, 'nodes');
      const profiles = join(base, 'profiles');
      mkdirSync(nodes, { recursive: true });
      mkdirSync(profiles);
      const out = await outputOf('bash', ['-c', 'ulimit -n 128 && exec "$0" --input-type=module -e "$1" "$2" "$3" "$4"', process.execPath, PROFILE_CHILD, nodes, profiles, freshDoc], { timeoutMs: 40_000 });
      const { during, after } = JSON.parse(out) as ChildReport;
      expect(during.seen).toEqual(['failed bad SVCNODE_INVALID_PROFILE', expect.stringMatching(/^failed fresh \S+ EMFILE$/) as unknown]);
      expect(during.inUse).toEqual([]);
      expect(after.seen).toEqual(['reloaded fresh']);
      expect(after.inUse).toEqual(['fresh']);
    } finally {
      await pki.cleanup();
    }
  }, 40_000);

  it('on a hung mount a listing is given up after 5 s, no second one is started while it waits, and what is in use stays', async () => {
    const { during, after } = await runChild(join(dir, 'hung'), HUNG_CHILD, 'export UV_THREADPOOL_SIZE=1');
    // Before: the round waited for the kernel, and every later round shared it: no reload at all meanwhile.
    expect(during.firstMs).toBeGreaterThanOrEqual(4_900);
    expect(during.firstMs).toBeLessThan(7_500);
    expect(during.secondMs).toBeLessThan(500);
    expect(during.seen).toEqual([expect.stringMatching(/nodes directory could not be listed \(listing .* did not answer within 5000 ms \(a hung mount\?\)\); every node in use stays in use/) as unknown]);
    expect(during.inUse).toEqual(['keep']);
    expect(after.seen).toEqual(['loaded fresh']);
    expect(after.inUse).toEqual(['fresh', 'keep']);
  }, 40_000);
});
