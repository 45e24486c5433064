/**
 * NodeWatcher and the Registry's per-file node state on real files in a temporary directory:
 * the cases the worker-level test does not reach cheaply.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeWatcher, type NodeWatcherEvents } from '../../src/definitions/node-watcher.js';
import { ProfileWatcher } from '../../src/definitions/profile-watcher.js';
import { Registry } from '../../src/definitions/registry.js';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { InvalidInputError } from '../../src/errors.js';
import { waitFor } from '../helpers/net.js';

const text = (id: string, path: string, profile = 'bank'): string => JSON.stringify({ id, request: { method: 'GET', url: `https://backend.example:8443${path}` }, tls: { profile } });

/** The InvalidInputError `fn` throws, if any. */
function thrown(fn: () => unknown): InvalidInputError | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  return undefined;
}

describe('NodeWatcher', () => {
  let dir: string;
  let nodes: string;
  let profiles: string;
  let seen: string[];
  let watcher: NodeWatcher | undefined;

  const events = (overrides: Partial<NodeWatcherEvents> = {}): NodeWatcherEvents => ({
    loaded: (file, node, previous, droppedId, displaced) => seen.push(`loaded ${node.id}${previous ? ' (reloaded)' : ''}${droppedId ? ` dropping ${droppedId}` : ''}${displaced ? ` displacing ${displaced.replace(/^.*\//, '')}` : ''}`),
    failed: (file, error, lastGood) => seen.push(`failed ${file.replace(/^.*\//, '')} ${error.code}${lastGood ? ` keeping ${lastGood.id}` : ''}`),
    removed: (file, nodeId) => seen.push(`removed ${file.replace(/^.*\//, '')} ${nodeId ?? '-'}`),
    error: (error) => seen.push(`error ${(error as Error).message}`),
    ...overrides,
  });
  const open = async (overrides?: Partial<NodeWatcherEvents>, intervalMs = 3_600_000): Promise<{ registry: Registry; watcher: NodeWatcher }> => {
    const registry = await Registry.load(nodes, profiles);
    watcher = new NodeWatcher(registry, events(overrides), { intervalMs });
    await watcher.start();
    return { registry, watcher };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-node-watcher-'));
    nodes = join(dir, 'nodes');
    profiles = join(dir, 'profiles');
    mkdirSync(nodes);
    mkdirSync(profiles);
    seen = [];
  });
  afterEach(() => {
    watcher?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a FIFO dropped into the directory is refused without opening it: the round ends and later files load', async () => {
    const { registry, watcher } = await open();
    const pipe = join(nodes, 'stuck.json');
    execFileSync('mkfifo', [pipe]);
    writeFileSync(join(nodes, 'b.json'), text('b', '/b'));
    try {
      await watcher.check();
      expect(seen).toEqual(['loaded b', 'failed stuck.json SVCNODE_INVALID_DEFINITION']);
      expect(registry.node('b').request.url).toBe('https://backend.example:8443/b');
    } finally {
      // A regression would leave a pool thread blocked on the pipe: release it.
      try {
        closeSync(openSync(pipe, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // Nothing was waiting on it.
      }
    }
  });

  it('a touched file with the same text keeps the definition object in use (its call caches stay warm)', async () => {
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    const { registry, watcher } = await open();
    const before = registry.node('a');
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(nodes, 'a.json'), later, later);
    await watcher.check();
    expect(registry.node('a')).toBe(before);
    expect(seen).toEqual([]);
    writeFileSync(join(nodes, 'a.json'), text('a', '/a2'));
    await watcher.check();
    expect(registry.node('a')).not.toBe(before);
    expect(registry.node('a').request.url).toBe('https://backend.example:8443/a2');
    expect(seen).toEqual(['loaded a (reloaded)']);
  });

  it('a file refused for a duplicate id loads in the round that removes the file holding the id', async () => {
    writeFileSync(join(nodes, 'a.json'), text('x', '/from-a'));
    writeFileSync(join(nodes, 'b.json'), text('x', '/from-b'));
    const { registry, watcher } = await open();
    expect(registry.node('x').request.url).toContain('/from-a');
    expect(registry.problems.map((p) => [p.file, p.error.code])).toContainEqual([join(nodes, 'b.json'), 'SVCNODE_INVALID_DEFINITION']);
    rmSync(join(nodes, 'a.json'));
    await watcher.check();
    expect(registry.node('x').request.url).toContain('/from-b');
    expect(registry.problems.filter((p) => p.error.code === 'SVCNODE_INVALID_DEFINITION').map((p) => p.file)).not.toContain(join(nodes, 'b.json'));
    expect(seen).toEqual(['removed a.json x', 'loaded x']);
  });

  it('a file added after the registry loaded but before the watcher started is loaded by the first round', async () => {
    const registry = await Registry.load(nodes, profiles);
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    watcher = new NodeWatcher(registry, events(), { intervalMs: 3_600_000 });
    await watcher.start();
    await watcher.check();
    expect(registry.node('a').id).toBe('a');
    expect(seen).toEqual(['loaded a']);
  });

  it('a nodes directory that cannot be read removes nothing', async () => {
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    const { registry, watcher } = await open();
    renameSync(nodes, `${nodes}.away`);
    await watcher.check();
    expect(registry.node('a').id).toBe('a');
    expect(seen).toEqual([]);
    renameSync(`${nodes}.away`, nodes);
  });

  it('a duplicate id added while running goes to the file first by name, as a worker started afterwards decides', async () => {
    writeFileSync(join(nodes, 'good.json'), text('good', '/from-good'));
    const { registry, watcher } = await open();
    // Later by name: refused, the running definition stays.
    writeFileSync(join(nodes, 'zz-copy.json'), text('good', '/from-zz'));
    await watcher.check();
    expect(registry.node('good').request.url).toContain('/from-good');
    // Earlier by name ('-' sorts before '.'): it takes the id over, the other file becomes the problem.
    writeFileSync(join(nodes, 'good-dup.json'), text('good', '/from-dup'));
    await watcher.check();
    expect(registry.node('good').request.url).toContain('/from-dup');
    const duplicates = (r: Registry): string[] => r.problems.filter((p) => p.error.message.includes('already defined by')).map((p) => p.file.replace(/^.*\//, '')).sort();
    expect(duplicates(registry)).toEqual(['good.json', 'zz-copy.json']);
    expect(seen).toContain('loaded good (reloaded) displacing good.json');
    // A worker starting now agrees.
    const fresh = await Registry.load(nodes, profiles);
    expect(fresh.node('good').request.url).toContain('/from-dup');
    expect(duplicates(fresh)).toEqual(duplicates(registry));
    // The first file goes: the next one by name has the id again.
    rmSync(join(nodes, 'good-dup.json'));
    await watcher.check();
    expect(registry.node('good').request.url).toContain('/from-good');
    expect(duplicates(registry)).toEqual(['zz-copy.json']);
  });

  it('a node naming an unknown profile stays reported across reloads; its problem goes with the node', async () => {
    writeFileSync(join(nodes, 'a.json'), text('a', '/a', 'missing'));
    const { registry, watcher } = await open();
    const unknown = (): string[] => registry.problems.filter((p) => p.error.code === 'SVCNODE_UNKNOWN_PROFILE').map((p) => p.file);
    // Named by the node's file, as the log names it.
    expect(unknown()).toEqual([join(nodes, 'a.json')]);
    writeFileSync(join(nodes, 'a.json'), text('a', '/a/changed', 'missing'));
    await watcher.check();
    expect(unknown()).toEqual([join(nodes, 'a.json')]);
    rmSync(join(nodes, 'a.json'));
    await watcher.check();
    expect(unknown()).toEqual([]);
    expect(thrown(() => registry.node('a'))?.code).toBe('SVCNODE_NODE_REMOVED');
  });

  it('a removed file that only held a problem clears it; a removed node answers SVCNODE_NODE_REMOVED, then loads again', async () => {
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    writeFileSync(join(nodes, 'broken.json'), '{"id": ');
    const { registry, watcher } = await open();
    expect(registry.problems.map((p) => p.file)).toContain(join(nodes, 'broken.json'));
    rmSync(join(nodes, 'broken.json'));
    rmSync(join(nodes, 'a.json'));
    await watcher.check();
    expect(registry.problems).toEqual([]);
    const error = thrown(() => registry.node('a'));
    expect(error).toMatchObject({ code: 'SVCNODE_NODE_REMOVED', hint: 'restore the file or stop enqueueing this node' });
    expect(error?.message).toContain(join(nodes, 'a.json'));
    expect(seen).toEqual(['removed a.json a', 'removed broken.json -']);
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    await watcher.check();
    expect(registry.node('a').id).toBe('a');
  });

  it('a throwing event handler does not escape the round: it is reported through `error`, and the change is kept', async () => {
    const { registry, watcher } = await open({
      loaded: () => {
        throw new Error('handler broke');
      },
    });
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    await expect(watcher.check()).resolves.toBeUndefined();
    expect(seen).toEqual(['error handler broke']);
    expect(registry.node('a').id).toBe('a');
  });

  it('a broken file is reported without quoting its text (it may hold a header token)', async () => {
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    const { registry, watcher } = await open();
    writeFileSync(join(nodes, 'a.json'), '{"id": "a", "request": {"headers": {"authorization": Bearer s3cr3t-t0ken}}}');
    await watcher.check();
    const problem = registry.problems.find((p) => p.file === join(nodes, 'a.json'));
    expect(problem?.error.message).toContain("not valid JSON (Unexpected token 'B')");
    expect(problem?.error.message).not.toContain('s3cr3t');
  });

  it('polls on its timer until stopped', async () => {
    const { registry, watcher } = await open(undefined, 20);
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    await waitFor(() => registry.nodes.has('a'), 5_000, 10, 'a loaded by the timer');
    watcher.stop();
    await sleep(50);
    writeFileSync(join(nodes, 'b.json'), text('b', '/b'));
    await sleep(150);
    expect(registry.nodes.has('b')).toBe(false);
  });

  it('keeps the last good definition when a file turns invalid, and says so', async () => {
    writeFileSync(join(nodes, 'a.json'), text('a', '/a'));
    const { registry, watcher } = await open();
    const good: NodeDefinition = registry.node('a');
    writeFileSync(join(nodes, 'a.json'), text('a', '/a').slice(0, 20));
    await watcher.check();
    expect(registry.node('a')).toBe(good);
    expect(seen).toEqual(['failed a.json SVCNODE_INVALID_DEFINITION keeping a']);
    expect(registry.problems.filter((p) => p.error.code !== 'SVCNODE_UNKNOWN_PROFILE')).toEqual([expect.objectContaining({ kind: 'node', file: join(nodes, 'a.json') })]);
  });
});

describe('ProfileWatcher, on the same poller', () => {
  it('a throwing event handler is reported through `error`, not an unhandled rejection that would end the worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-profile-watcher-'));
    const [nodes, profiles] = [join(dir, 'nodes'), join(dir, 'profiles')];
    mkdirSync(nodes);
    mkdirSync(profiles);
    const errors: string[] = [];
    const registry = await Registry.load(nodes, profiles);
    const watcher = new ProfileWatcher(
      registry,
      {
        reloaded: () => undefined,
        failed: () => {
          throw new Error('handler broke');
        },
        error: (error) => void errors.push((error as Error).message),
      },
      { intervalMs: 3_600_000 },
    );
    try {
      await watcher.start();
      writeFileSync(join(profiles, 'bank.json'), '{"client": ');
      await expect(watcher.check()).resolves.toBeUndefined();
      expect(errors).toEqual(['handler broke']);
    } finally {
      watcher.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
