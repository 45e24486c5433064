/**
 * Hostile context values and definitions against a real mTLS backend: the origin of a call comes
 * from the definition only, dot segments cannot move the path, URL userinfo is refused.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { validateDocument } from '../../src/definitions/validator.js';
import { InvalidInputError } from '../../src/errors.js';
import { invoke, type InvokeDeps } from '../../src/invoke/execute.js';
import { loadNodeFile } from '../../src/definitions/nodes.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { AgentPool } from '../../src/tls/agents.js';
import { runCli } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

let pki: TestPki;
let agents: AgentPool;
let deps: InvokeDeps;
let backend: MtlsServer;
let dir: string;
const paths: string[] = [];

function node(url: string): NodeDefinition {
  return { id: 'hostile', request: { method: 'GET', url }, tls: { profile: 'bank' }, retry: { limit: 0 } };
}

beforeAll(async () => {
  pki = await createTestPki();
  const profile = await loadProfile(pki.profile('bank'));
  agents = new AgentPool();
  deps = { profile: () => profile, agents };
  backend = await startMtlsServer({
    key: pki.server.keyPem,
    cert: pki.server.certPem + pki.intermediate.certPem,
    ca: pki.root.certPem,
    handler: (req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'svcnode-hostile-'));
});
afterAll(async () => {
  agents?.destroy();
  await backend?.close();
  await pki?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function definitionError(url: string): InvalidInputError {
  try {
    validateDocument('node', node(url), 'node.json');
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  return expect.fail(`${url} was accepted`);
}

describe('the origin of a call comes from the definition', () => {
  it.each([
    'https://{{context.host}}:8443/echo',
    'https://api.example:{{context.port}}/echo',
    'https://api.{{context.env}}.example/echo',
    'https://{{context.host}}',
  ])('a template in the origin of %s is refused at validation, pointing at /request/url', (url) => {
    const error = definitionError(url);
    expect(error.code).toBe('SVCNODE_INVALID_DEFINITION');
    expect(error.field).toBe('/request/url');
  });

  it.each(['https://admin:S3cretPW@api.example/x', 'https://admin@api.example/x', 'https://api.example\\@evil.example/x'])('userinfo in %s is refused at validation', (url) => {
    const error = definitionError(url);
    expect(error.field).toBe('/request/url');
    expect(error.message).not.toContain('S3cretPW');
  });

  it('templates in the path and query stay accepted', () => {
    expect(() => validateDocument('node', node('https://api.example:8443/a/{{context.id}}?q={{context.q}}#f'), 'node.json')).not.toThrow();
    expect(() => validateDocument('node', node('https://[::1]:8443/x/user@domain'), 'node.json')).not.toThrow();
  });

  it('an unvalidated definition with a templated host still never calls the host the context names', async () => {
    const seen = backend.requests;
    const result = await invoke(node('https://{{context.host}}/echo'), { host: `localhost:${backend.port}` }, deps);
    expect(result.failure?.category).toBe('invalid_input');
    expect(result.failure?.code).toBe('SVCNODE_TEMPLATE');
    expect(backend.requests).toBe(seen);
  });

  it('dry-run of a definition with a templated host exits 2 naming /request/url', async () => {
    const file = join(dir, 'steer.json');
    writeFileSync(file, JSON.stringify(node(`https://{{context.host}}:${backend.port}/echo`)));
    const ctx = join(dir, 'ctx.json');
    writeFileSync(ctx, JSON.stringify({ host: 'localhost' }));
    const seen = backend.requests;
    const r = await runCli(['dry-run', file, '--context', ctx, '--profiles', join(pki.profile('bank'), '..'), '--json']);
    expect(r.code).toBe(2);
    expect(`${r.stdout}${r.stderr}`).toContain('/request/url');
    expect(backend.requests).toBe(seen);
  });
});

describe('context values cannot move the path', () => {
  const url = (): string => `https://localhost:${backend.port}/accounts/{{context.id}}/details`;

  it.each(['..', '.'])('a context value "%s" as a whole path segment is refused before any byte is sent', async (id) => {
    const seen = backend.requests;
    const result = await invoke(node(url()), { id }, deps);
    expect(result.failure?.code).toBe('SVCNODE_TEMPLATE');
    expect(result.failure?.category).toBe('invalid_input');
    expect(backend.requests).toBe(seen);
  });

  it('the backend receives the path the definition meant, with slashes and dots of values encoded', async () => {
    paths.length = 0;
    for (const id of ['42', 'a/../b', '...', '%2e%2e', '..a']) {
      const result = await invoke(node(url()), { id }, deps);
      expect(result.ok, id).toBe(true);
    }
    expect(paths).toEqual(['/accounts/42/details', '/accounts/a%2F..%2Fb/details', '/accounts/.../details', '/accounts/%252e%252e/details', '/accounts/..a/details']);
  });

  it('literal dot segments of the definition itself are left to the URL parser', async () => {
    paths.length = 0;
    const result = await invoke(node(`https://localhost:${backend.port}/v1/../accounts/{{context.id}}`), { id: '7' }, deps);
    expect(result.ok).toBe(true);
    expect(paths).toEqual(['/accounts/7']);
  });
});

describe('bodies and headers say what the definition meant, whatever the context holds', () => {
  let echo: MtlsServer;
  const seen: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
  beforeAll(async () => {
    echo = await startMtlsServer({
      key: pki.server.keyPem,
      cert: pki.server.certPem + pki.intermediate.certPem,
      ca: pki.root.certPem,
      handler: (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
      },
    });
  });
  afterAll(() => echo?.close());

  const post = (request: Partial<NodeDefinition['request']>): NodeDefinition => ({ ...node(`https://localhost:${echo.port}/pay`), request: { method: 'POST', url: `https://localhost:${echo.port}/pay`, ...request } });
  const last = (): (typeof seen)[number] => seen[seen.length - 1] as (typeof seen)[number];

  it('a form body encodes each context value: a value cannot add or override fields (before: amount=99999 went through)', async () => {
    const r = await invoke(post({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'user={{context.u}}&amount=10' }), { u: 'bob&amount=99999&to=mallory lee' }, deps);
    expect(r.failure).toBeNull();
    const form = new URLSearchParams(last().body);
    expect([form.get('user'), form.getAll('amount'), form.has('to')]).toEqual(['bob&amount=99999&to=mallory lee', ['10'], false]);
  });

  it('an object body under a form content type is sent as its fields, not as JSON', async () => {
    const r = await invoke(post({ headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, body: { name: '{{context.name}}', amount: 10, note: 'a&b' } }), { name: 'Jürgen M' }, deps);
    expect(r.failure).toBeNull();
    expect(last().body).toBe('name=J%C3%BCrgen+M&amount=10&note=a%26b');
    expect(Object.fromEntries(new URLSearchParams(last().body))).toEqual({ name: 'Jürgen M', amount: '10', note: 'a&b' });
  });

  it('a string body that is one template of an object or array sends it as JSON text (before: "[object Object]", "1,two")', async () => {
    await invoke(post({ body: '{{context.obj}}' }), { obj: { k: [1, 'two'] } }, deps);
    expect(last().body).toBe('{"k":[1,"two"]}');
    await invoke(post({ body: '{{context.list}}' }), { list: [1, 'two'] }, deps);
    expect(last().body).toBe('[1,"two"]');
  });

  it('a header value beyond ASCII is sent as UTF-8, as curl sends it (before: "ü" as one Latin-1 byte, "€" refused)', async () => {
    for (const value of ['Müller', 'price 5€', 'emoji 🙂']) {
      const r = await invoke(post({ headers: { 'x-val': '{{context.h}}' } }), { h: value }, deps);
      expect(r.failure).toBeNull();
      expect(Buffer.from(String(last().headers['x-val']), 'latin1').toString('utf8')).toBe(value);
    }
  });

  it('an unpaired surrogate in a header value is invalid input naming the header, and nothing is sent', async () => {
    const before = seen.length;
    const r = await invoke(post({ headers: { 'x-val': '{{context.h}}' } }), { h: 'broken \uD800 value' }, deps);
    expect(r.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_TEMPLATE' });
    expect(r.failure?.message).toContain('/request/headers/x-val');
    expect(seen.length).toBe(before);
  });

  it.each(['GET', 'HEAD'])('a body on a %s is refused at load (before: dropped without a word)', (method) => {
    const file = join(dir, `body-${method}.json`);
    writeFileSync(file, JSON.stringify(post({ method: method as 'GET', body: { q: 1 } })));
    expect(() => loadNodeFile(file)).toThrow(new RegExp(`/request/body: is never sent with ${method}`));
  });

  describe('form bodies: the media type is read as servers read it, and what cannot be form-encoded is refused', () => {
    it('a form type followed by a list entry still form-encodes each value (before: sent raw, PHP parsed amount=9999)', async () => {
      const r = await invoke(post({ headers: { 'content-type': 'application/x-www-form-urlencoded,text/plain' }, body: 'grant_type=password&user={{context.u}}&amount=1' }), { u: 'bob&amount=9999&admin=1' }, deps);
      expect(r.failure).toBeNull();
      const form = new URLSearchParams(last().body);
      expect([form.get('user'), form.getAll('amount'), form.has('admin')]).toEqual(['bob&amount=9999&admin=1', ['1'], false]);
    });

    it('an object body under a form type followed by a blank or parameters is sent as its fields', async () => {
      for (const type of ['APPLICATION/X-WWW-FORM-URLENCODED text/plain', '\tapplication/x-www-form-urlencoded;charset=utf-8']) {
        const r = await invoke(post({ headers: { 'Content-Type': type }, body: { user: '{{context.u}}', amount: 1 } }), { u: 'bob&amount=9999' }, deps);
        expect(r.failure).toBeNull();
        expect(last().body, type).toBe('user=bob%26amount%3D9999&amount=1');
      }
    });

    it('an array body under a form type is refused at load (before: its JSON text went out labelled as a form)', () => {
      const file = join(dir, 'form-array.json');
      writeFileSync(file, JSON.stringify(post({ headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' }, body: ['{{context.u}}'] })));
      expect(() => loadNodeFile(file)).toThrow(expect.objectContaining({ code: 'SVCNODE_INVALID_DEFINITION', field: '/request/body' }) as Error);
    });

    it('an unvalidated definition whose content type the context names: an array body under a form type is invalid input, nothing sent', async () => {
      const before = seen.length;
      const r = await invoke(post({ headers: { 'content-type': '{{context.ct}}' }, body: ['{{context.u}}'] }), { ct: 'application/x-www-form-urlencoded', u: 'bob&amount=9999&admin=1' }, deps);
      expect(r.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_TEMPLATE' });
      expect(seen.length).toBe(before);
    });
  });

  describe('a string body under a JSON content type', () => {
    const transfer = '{"to":"{{context.to}}","amount":10}';

    it('escapes a value placed inside quotes: it cannot close the string and add members (before: "amount":99999 went through)', async () => {
      const to = 'alice","amount":99999,"x":"';
      const r = await invoke(post({ headers: { 'Content-Type': 'application/json' }, body: transfer }), { to }, deps);
      expect(r.failure).toBeNull();
      expect(JSON.parse(last().body)).toEqual({ to, amount: 10 });
      // Without a JSON content type a string body is text: values go in as they are.
      await invoke(post({ body: 'to={{context.to}}' }), { to: 'a "b"' }, deps);
      expect(last().body).toBe('to=a "b"');
    });

    it.each([
      ['application/json; charset=utf-8', 'line\nbreak \\ back "quote" \u0001 ü'],
      ['application/vnd.api+json', '\\'],
      ['TEXT/JSON', '{"a":1}'],
    ])('under %s every value arrives as the string it was', async (type, to) => {
      const r = await invoke(post({ headers: { 'content-type': type }, body: transfer }), { to }, deps);
      expect(r.failure).toBeNull();
      expect(JSON.parse(last().body)).toEqual({ to, amount: 10 });
    });

    it('a value outside quotes goes in when it is one JSON value; a fragment that adds members is invalid input, nothing sent', async () => {
      const body = '{"amount": {{context.amount}}, "note": {{context.note}}}';
      const type = { 'content-type': 'application/json' };
      for (const [amount, note] of [[12.5, 'null'], ['12.50', '"ok"'], [true, { k: ['v'] }]] as const) {
        const r = await invoke(post({ headers: type, body }), { amount, note }, deps);
        expect(r.failure, JSON.stringify(r.failure)).toBeNull();
        expect(JSON.parse(last().body)).toEqual({ amount: typeof amount === 'string' ? 12.5 : amount, note: typeof note === 'string' ? (JSON.parse(note) as unknown) : note });
      }
      const before = seen.length;
      for (const amount of ['1, "admin": true', 'abc', '"a", "b": "c"']) {
        const r = await invoke(post({ headers: type, body }), { amount, note: 1 }, deps);
        expect(r.failure, amount).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_TEMPLATE' });
      }
      expect(seen.length).toBe(before);
    });

    it('a template right after a backslash inside a JSON string is refused at load', () => {
      const file = join(dir, 'json-escape.json');
      writeFileSync(file, JSON.stringify(post({ headers: { 'Content-Type': 'application/json' }, body: '{"to":"a\\{{context.to}}"}' })));
      expect(() => loadNodeFile(file)).toThrow(expect.objectContaining({ code: 'SVCNODE_INVALID_DEFINITION', field: '/request/body' }) as Error);
    });
  });

  describe('a string body under a multipart content type', () => {
    const form = 'multipart/form-data; boundary=svcnode-b0undary';
    const body = ['--svcnode-b0undary', 'Content-Disposition: form-data; name="memo"', '', '{{context.memo}}', '--svcnode-b0undary', 'Content-Disposition: form-data; name="amount"', '', '10', '--svcnode-b0undary--', ''].join('\r\n');
    /** The parts a server reads, by name: what undici's FormData parser (as Node's fetch) makes of the body. */
    const parts = async (raw: string, type: string): Promise<Record<string, string[]>> => {
      const data = await new Response(raw, { headers: { 'content-type': type } }).formData();
      const out: Record<string, string[]> = {};
      for (const [name, value] of data.entries()) (out[name] ??= []).push(typeof value === 'string' ? value : await value.text());
      return out;
    };

    it('a value holding the boundary is invalid input and nothing is sent (before: it ended the part and added "amount=99999")', async () => {
      const memo = 'thanks\r\n--svcnode-b0undary\r\nContent-Disposition: form-data; name="amount"\r\n\r\n99999';
      const before = seen.length;
      const r = await invoke(post({ headers: { 'Content-Type': form }, body }), { memo }, deps);
      expect(r.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_TEMPLATE', message: expect.stringContaining('multipart delimiter "--svcnode-b0undary"') as unknown });
      expect(r.failure?.message).not.toContain('99999');
      expect(seen.length).toBe(before);
    });

    it('other values, line breaks included, arrive as the part they stand in', async () => {
      for (const [type, memo] of [
        [form, 'line one\r\nline two -- svcnode'],
        ['multipart/form-data; boundary="svcnode-b0undary"; charset=utf-8', 'ü --svcnode-b0undar'],
      ] as const) {
        const r = await invoke(post({ headers: { 'content-type': type }, body }), { memo }, deps);
        expect(r.failure).toBeNull();
        expect(await parts(last().body, type)).toEqual({ memo: [memo], amount: ['10'] });
      }
    });

    it('a multipart type without a boundary, or with a JSON body, is refused at load', () => {
      const file = join(dir, 'multipart.json');
      writeFileSync(file, JSON.stringify(post({ headers: { 'Content-Type': 'multipart/form-data' }, body })));
      expect(() => loadNodeFile(file)).toThrow(expect.objectContaining({ code: 'SVCNODE_INVALID_DEFINITION', field: '/request/headers/Content-Type' }) as Error);
      writeFileSync(file, JSON.stringify(post({ headers: { 'Content-Type': form }, body: { memo: '{{context.memo}}' } })));
      expect(() => loadNodeFile(file)).toThrow(expect.objectContaining({ code: 'SVCNODE_INVALID_DEFINITION', field: '/request/body' }) as Error);
      writeFileSync(file, JSON.stringify(post({ headers: { 'Content-Type': form }, body })));
      expect(loadNodeFile(file).id).toBe('hostile');
    });
  });

  it.each(['Transfer-Encoding', 'content-length', 'Connection', 'upgrade'])('a %s header in the definition is refused at load, naming it (before: sent beside svcnode\'s own framing)', (name) => {
    const file = join(dir, `framing-${name}.json`);
    writeFileSync(file, JSON.stringify(post({ headers: { [name]: 'chunked' }, body: { a: 1 } })));
    expect(() => loadNodeFile(file)).toThrow(new RegExp(`/request/headers/${name}: frames the message`));
  });
});

/** A GET of account 42 whose definition carries one more header. */
const withHeader = (name: string, value: string): NodeDefinition => ({ ...node(`https://localhost:${backend.port}/v1/accounts/42`), request: { method: 'GET', url: `https://localhost:${backend.port}/v1/accounts/42`, headers: { [name]: value } } });

/** The error loading `definition` from a file throws. */
function loadError(name: string, definition: NodeDefinition): InvalidInputError {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(definition));
  try {
    loadNodeFile(file);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  return expect.fail(`${name} was accepted`);
}

describe('a Host header cannot steer the call to another virtual host', () => {
  it.each([
    ['Host', '{{context.region}}.customer-api.internal'],
    ['host', 'admin-api.internal'],
    ['HOST', 'localhost'],
  ])('a %s header in the definition is refused at load, naming it (before: a context value chose the gateway route)', (name, value) => {
    const error = loadError(`host-${name}`, withHeader(name, value));
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field: `/request/headers/${name}` });
    expect(error.hint).toMatch(/request\.url.*tls\.servername/);
  });

  it('dry-run of a definition with a Host header exits 2 naming the field, and sends nothing', async () => {
    const file = join(dir, 'tenant.json');
    writeFileSync(file, JSON.stringify(withHeader('Host', '{{context.region}}.api.internal')));
    const ctx = join(dir, 'tenant-ctx.json');
    writeFileSync(ctx, JSON.stringify({ region: 'admin-api.internal:443#' }));
    const seen = backend.requests;
    const r = await runCli(['dry-run', file, '--context', ctx, '--profiles', join(pki.profile('bank'), '..'), '--json']);
    expect(r.code).toBe(2);
    expect(`${r.stdout}${r.stderr}`).toContain('/request/headers/Host');
    expect(backend.requests).toBe(seen);
  });
});

describe('tls.servername', () => {
  it.each(['127.0.0.1', '::1', '[::1]'])('%s, an IP address, is refused at load (before: sent as SNI against RFC 6066, with a Node deprecation warning)', (servername) => {
    expect(loadError(`sni-${servername.replace(/\W/g, '')}`, { ...withHeader('Accept', 'application/json'), tls: { profile: 'bank', servername } })).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field: '/tls/servername' });
  });

  it('a DNS name loads', () => {
    const file = join(dir, 'sni-name.json');
    writeFileSync(file, JSON.stringify({ ...withHeader('Accept', 'application/json'), tls: { profile: 'bank', servername: 'api.bank.example' } }));
    expect(loadNodeFile(file).tls.servername).toBe('api.bank.example');
  });
});

describe('proxy.noProxy', () => {
  it.each(['10.0.0.0/33', 'fd00::/129', 'http://proxy.internal/', 'internal.example/24'])('%s, which could never match, is refused at load naming the entry (before: accepted, and the call silently went through the proxy)', (entry) => {
    const error = loadError(`noproxy-${entry.replace(/\W/g, '')}`, { ...withHeader('Accept', 'application/json'), proxy: { url: 'http://proxy.internal:3128', noProxy: ['api.bank.example', entry] } });
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field: '/proxy/noProxy/1' });
    expect(error.hint).toContain('CIDR block (10.0.0.0/8, fd00::/8)');
  });

  it('CIDR blocks load', () => {
    const file = join(dir, 'noproxy-cidr.json');
    writeFileSync(file, JSON.stringify({ ...withHeader('Accept', 'application/json'), proxy: { url: 'http://proxy.internal:3128', noProxy: ['10.0.0.0/8', '[fd00::]/8', '*'] } }));
    expect(loadNodeFile(file).proxy?.noProxy).toEqual(['10.0.0.0/8', '[fd00::]/8', '*']);
  });
});

describe('headers gateways route by take no value from the context', () => {
  it.each([
    ['X-Forwarded-Host', '{{context.tenant}}.api.internal'],
    ['forwarded', 'host={{context.tenant}};proto=https'],
    ['X-Original-URL', '/admin/{{context.path}}'],
  ])('a templated %s header is refused at load, naming it (before: the context chose the route of a gateway that trusts it)', (name, value) => {
    expect(loadError(`route-${name}`, withHeader(name, value))).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field: `/request/headers/${name}` });
  });

  it('a fixed value is the definition\'s own choice, and is sent', async () => {
    const file = join(dir, 'route-fixed.json');
    writeFileSync(file, JSON.stringify(withHeader('X-Forwarded-Host', 'customer-api.internal')));
    const r = await invoke(loadNodeFile(file), {}, deps);
    expect(r.failure).toBeNull();
  });
});

describe('a backslash in the path of request.url', () => {
  const url = (): string => `https://localhost:${backend.port}/api/v1\\{{context.a}}\\secret-admin`;

  it('is refused at load with a hint to write "/" or %5C (before: ".." from the context escaped the path); in the query it loads', () => {
    const file = join(dir, 'backslash.json');
    writeFileSync(file, JSON.stringify(node(url())));
    let error: unknown;
    try {
      loadNodeFile(file);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field: '/request/url' });
    expect((error as InvalidInputError).hint).toContain('%5C');
    // In the query the parser keeps a backslash as it is: that loads.
    const query = join(dir, 'backslash-query.json');
    writeFileSync(query, JSON.stringify(node(`https://localhost:${backend.port}/users?login=CORP\\{{context.user}}`)));
    expect(loadNodeFile(query).request.url).toContain('CORP\\');
  });

  it('an unvalidated definition still cannot be moved by ".." next to a backslash: it separates segments', async () => {
    const seen = backend.requests;
    const refused = await invoke(node(url()), { a: '..' }, deps);
    expect(refused.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_TEMPLATE' });
    expect(backend.requests).toBe(seen);
    paths.length = 0;
    const r = await invoke(node(url()), { a: 'x' }, deps);
    expect(r.ok).toBe(true);
    expect(paths).toEqual(['/api/v1/x/secret-admin']);
  });
});
