/**
 * Bad node definitions are found when the files are loaded (real files, the loaders the worker and
 * the dry-run use, and the real CLI): template typos, proxy URLs whose credentials cut the URL
 * short, host names DNS cannot look up. Files written by Windows tools (a UTF-8 BOM, `.JSON`) load.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { loadNodeFile, loadNodesDir } from '../../src/definitions/nodes.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { Registry } from '../../src/definitions/registry.js';
import { renderRequest } from '../../src/invoke/render.js';
import { runCli } from '../helpers/cli.js';

let dir: string;
let count = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-def-load-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A node definition file with `request` (and other fields) overridden; returns its path. */
function nodeFile(extra: Record<string, unknown>, request: Record<string, unknown> = {}, o: { name?: string; in?: string; bom?: boolean } = {}): string {
  const file = join(o.in ?? dir, o.name ?? `node-${++count}.json`);
  const doc = { id: `node-${count}`, request: { method: 'POST', url: 'https://api.bank.example/accounts/{{context.id}}', ...request }, tls: { profile: 'bank' }, ...extra };
  writeFileSync(file, `${o.bom ? '\uFEFF' : ''}${JSON.stringify(doc, null, 2)}\n`);
  return file;
}

function loadError(file: string): InvalidInputError {
  try {
    loadNodeFile(file);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error(`${file} loaded`);
}

describe('templates are checked when the definition is loaded', () => {
  it.each([
    ['request.url', { url: 'https://h.example/x/{{contxt.a}}' }, '/request/url', '{{contxt.a}}'],
    ['a header with a filter', { headers: { 'x-a': '{{ context.a | upper }}' } }, '/request/headers/x-a', '{{ context.a | upper }}'],
    ['a query value', { query: { 'a/b': 'v-{{context.a + 1}}' } }, '/request/query/a~1b', '{{context.a + 1}}'],
    ['a nested body string', { body: { items: [{ note: 'x' }, { note: '{{context["a"]}}' }] } }, '/request/body/items/1/note', '{{context["a"]}}'],
    ['an empty template', { body: '{{ }}' }, '/request/body', '{{ }}'],
  ])('%s', (_what, request, pointer, template) => {
    const error = loadError(nodeFile({}, request));
    expect(error.code).toBe('SVCNODE_INVALID_DEFINITION');
    expect(error.field).toBe(pointer);
    expect(error.message).toContain(`${pointer}: unsupported template "${template}"`);
    expect(error.hint).toContain('{{context.path.to.value}}');
  });

  it('every bad template of a file is listed', () => {
    const error = loadError(nodeFile({}, { url: 'https://h.example/{{ctx.a}}', headers: { 'x-b': '{{env.B}}' } }));
    expect(error.message).toContain('/request/url: unsupported template "{{ctx.a}}"');
    expect(error.message).toContain('/request/headers/x-b: unsupported template "{{env.B}}"');
  });

  it('templates with spaces inside the braces load, and render at call time', () => {
    const node = loadNodeFile(nodeFile({}, { url: 'https://h.example/a/{{ context.id }}', headers: { 'x-a': '{{  context.a.b }}' }, query: { q: '{{context.q}}' }, body: { n: '{{ context.n }}' } }));
    const rendered = renderRequest(node, { id: 'A 1', a: { b: 'hdr' }, q: 'qq', n: 5 });
    expect(rendered.url.href).toBe('https://h.example/a/A%201?q=qq');
    expect(rendered.headers['x-a']).toBe('hdr');
    expect(rendered.body?.payload).toBe('{"n":5}');
  });

  it('the worker skips the file and keeps the others; the dry-run exits 2 naming the field', async () => {
    const nodes = join(dir, 'tpl-nodes');
    mkdirSync(nodes);
    nodeFile({ id: 'good' }, {}, { in: nodes, name: 'good.json' });
    const bad = nodeFile({ id: 'typo' }, { url: 'https://h.example/x/{{contxt.a}}' }, { in: nodes, name: 'typo.json' });
    const loaded = await loadNodesDir(nodes);
    expect([...loaded.nodes.keys()]).toEqual(['good']);
    expect(loaded.errors.map((e) => [e.file, e.error.code, e.error.field])).toEqual([[bad, 'SVCNODE_INVALID_DEFINITION', '/request/url']]);

    const r = await runCli(['dry-run', bad, '--profiles', dir, '--json'], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/request/url: unsupported template "{{contxt.a}}"');
  }, 30_000);
});

describe('proxy.url is refused at load unless it parses as written', () => {
  const password = 'PROXY#PW';
  it.each([
    ['a # in the password', `http://proxyuser:${password}@127.0.0.1:3128`],
    ['a / in the password', 'http://proxyuser:12/PW@127.0.0.1:3128'],
    ['a ? in the password', 'http://proxyuser:12?PW@127.0.0.1:3128'],
    ['a stray % in the password', 'http://proxyuser:PW%zz@127.0.0.1:3128'],
    ['a port above 65535', 'http://proxyuser:PW@127.0.0.1:99999'],
  ])('%s', (_what, url) => {
    const error = loadError(nodeFile({ proxy: { url } }));
    expect(error.code).toBe('SVCNODE_INVALID_DEFINITION');
    expect(error.field).toBe('/proxy/url');
    expect(error.message).toContain('/proxy/url');
    expect(`${error.message} ${error.hint ?? ''}`).not.toMatch(/PW|PROXY/);
    expect(error.hint).toContain('percent-encode');
  });

  it('port 0', () => {
    const error = loadError(nodeFile({ proxy: { url: 'http://proxyuser:PW@127.0.0.1:0' } }));
    expect(error.field).toBe('/proxy/url');
    expect(error.message).toContain('1–65535');
    expect(error.message).not.toContain('PW');
  });

  it('percent-encoded credentials, and a proxy without credentials, load', () => {
    expect(loadNodeFile(nodeFile({ proxy: { url: 'http://proxyuser:PROXY%23PW%2F%3F%25%40@127.0.0.1:3128' } })).proxy?.url).toContain('%23');
    expect(loadNodeFile(nodeFile({ proxy: { url: 'https://proxy.internal' } })).proxy?.url).toBe('https://proxy.internal');
  });
});

describe('request.url host', () => {
  it('a host name longer than 253 characters is refused at load', () => {
    const host = `${'a'.repeat(60)}.`.repeat(5) + 'example';
    const error = loadError(nodeFile({}, { url: `https://${host}/x` }));
    expect(error.field).toBe('/request/url');
    expect(error.message).toContain('at most 253');
  });

  it('a port above 65535 is refused at load', () => {
    expect(loadError(nodeFile({}, { url: 'https://h.example:99999/x' })).field).toBe('/request/url');
  });
});

describe('files written by Windows tools', () => {
  it('a node definition and a profile with a UTF-8 byte order mark load', async () => {
    expect(loadNodeFile(nodeFile({}, {}, { bom: true })).id).toBe(`node-${count}`);
    const profile = join(dir, 'bom-profile.json');
    writeFileSync(profile, '\uFEFF{ "trust": { "systemRoots": true } }\n');
    expect((await loadProfile(profile)).name).toBe('bom-profile');
  });

  it('a node file named *.JSON loads like *.json', async () => {
    const nodes = join(dir, 'caps-nodes');
    const profiles = join(dir, 'caps-profiles');
    mkdirSync(nodes);
    mkdirSync(profiles);
    nodeFile({ id: 'caps', tls: { profile: 'BANK' } }, {}, { in: nodes, name: 'CAPS.JSON' });
    writeFileSync(join(profiles, 'BANK.JSON'), '{ "client": {} }');
    const registry = await Registry.load(nodes, profiles);
    expect([...registry.nodes.keys()]).toEqual(['caps']);
    // The broken upper-case profile is reported under its name, not as an unknown profile.
    expect(registry.problems.map((p) => p.error.code)).toEqual(['SVCNODE_INVALID_PROFILE']);
    expect(() => registry.profile('BANK')).toThrow(/failed to load/);
  });
});

describe('a key twice in one object is refused at load (JSON.parse keeps the last, a reviewer reads the first)', () => {
  /** A node file with `request` written as raw JSON text. */
  const rawNode = (request: string, name = `node-${++count}.json`, into = dir): string => {
    const file = join(into, name);
    writeFileSync(file, `{"id": "dup-${count}", "request": ${request}, "tls": {"profile": "bank"}}`);
    return file;
  };

  it.each([
    ['request.url twice', '{"method": "GET", "url": "https://h.example/reviewed-path", "url": "https://h.example/admin/delete-all"}', '/request/url', '"url"'],
    ['the second spelled with an escape', '{"method": "GET", "url": "https://h.example/a", "\\u0075rl": "https://h.example/b"}', '/request/url', '"url"'],
    ['a key of an object in a body array', '{"method": "POST", "url": "https://h.example/a", "body": {"items": [{"n": 1}, {"to": "a", "to": "b"}]}}', '/request/body/items/1/to', '"to"'],
    ['a header name with a slash', '{"method": "GET", "url": "https://h.example/a", "headers": {"x/y": "1", "x/y": "2"}}', '/request/headers/x~1y', '"x/y"'],
  ])('%s', (_what, request, pointer, key) => {
    const file = rawNode(request);
    const error = loadError(file);
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', file, field: pointer });
    expect(error.message).toContain(`${file}: the key ${key} appears twice in one object (at ${pointer})`);
  });

  it('equal keys in different objects, and a byte order mark, are fine', () => {
    const file = rawNode('{"method": "POST", "url": "https://h.example/a", "headers": {"x-a": "1"}, "body": {"x-a": "2", "n": {"x-a": 3}, "list": [{"k": 1}, {"k": 2}]}}');
    writeFileSync(file, `\uFEFF${readFileSync(file, 'utf8')}`);
    expect(loadNodeFile(file).request.body).toEqual({ 'x-a': '2', n: { 'x-a': 3 }, list: [{ k: 1 }, { k: 2 }] });
  });

  it('a profile with a key twice; a worker reports the node file as a load problem and loads the others; dry-run exits 2', async () => {
    const profile = join(dir, 'dup-profile.json');
    writeFileSync(profile, '{"trust": {"systemRoots": true, "systemRoots": false}}');
    await expect(loadProfile(profile)).rejects.toMatchObject({ code: 'SVCNODE_INVALID_PROFILE', field: '/trust/systemRoots' });

    const nodes = join(dir, 'dup-nodes');
    mkdirSync(nodes);
    nodeFile({ id: 'good' }, {}, { in: nodes, name: 'good.json' });
    const bad = rawNode('{"method": "GET", "method": "DELETE", "url": "https://h.example/a"}', 'bad.json', nodes);
    const loaded = await loadNodesDir(nodes);
    expect([...loaded.nodes.keys()]).toEqual(['good']);
    expect(loaded.errors.map((e) => [e.file, e.error.code, e.error.field])).toEqual([[bad, 'SVCNODE_INVALID_DEFINITION', '/request/method']]);

    const r = await runCli(['dry-run', bad, '--profiles', dir, '--json'], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, failure: { category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' } });
  }, 30_000);
});
