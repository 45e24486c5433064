import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { InvalidInputError } from '../../src/errors.js';
import { jsonSlots, mediaTypeOf, renderRequest, renderString } from '../../src/invoke/render.js';

function node(request: Partial<NodeDefinition['request']>): NodeDefinition {
  return { id: 'render', request: { method: 'GET', url: 'https://api.example/', ...request }, tls: { profile: 'bank' } };
}

/** The InvalidInputError a render throws (fails the test if it does not throw one). */
function renderError(n: NodeDefinition, context: Record<string, unknown>): InvalidInputError {
  try {
    renderRequest(n, context);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).code).toBe('SVCNODE_TEMPLATE');
    return error as InvalidInputError;
  }
  return expect.fail('renderRequest did not throw');
}

describe('URL', () => {
  it('percent-encodes context values placed in the URL', () => {
    const r = renderRequest(node({ url: 'https://api.example/accounts/{{context.id}}/tx?since={{context.since}}' }), {
      id: 'a b/../c?d#e&f',
      since: '2024-01-01T00:00:00+01:00',
    });
    expect(r.url.pathname).toBe('/accounts/a%20b%2F..%2Fc%3Fd%23e%26f/tx');
    expect(r.url.searchParams.get('since')).toBe('2024-01-01T00:00:00+01:00');
    expect(r.url.hash).toBe('');
    expect(r.url.host).toBe('api.example');
  });

  it('renders nested paths, numbers and booleans, with or without spaces in the braces', () => {
    const r = renderRequest(node({ url: 'https://api.example/{{ context.customer.id }}/{{context.n}}/{{context.flag}}' }), { customer: { id: 'C-1' }, n: 42, flag: false });
    expect(r.url.pathname).toBe('/C-1/42/false');
  });

  it('a value cannot change the host or smuggle CR/LF', () => {
    const r = renderRequest(node({ url: 'https://api.example/{{context.v}}' }), { v: '@evil.example:443/\r\nHost: x' });
    expect(r.url.host).toBe('api.example');
    expect(r.url.href).not.toMatch(/[\r\n]/);
    expect(r.url.pathname).toBe('/%40evil.example%3A443%2F%0D%0AHost%3A%20x');
  });

  it('rejects a URL that does not render to https', () => {
    renderError(node({ url: '{{context.u}}' }), { u: 'http://plain.example/' });
  });
});

describe('query', () => {
  it('appends encoded parameters; templates and literal numbers and booleans', () => {
    const r = renderRequest(node({ url: 'https://api.example/search?fixed=1', query: { q: 'name={{context.q}}', limit: 10, exact: true } }), { q: 'Müller & Söhne #1' });
    expect(r.url.searchParams.get('fixed')).toBe('1');
    expect(r.url.searchParams.get('q')).toBe('name=Müller & Söhne #1');
    expect(r.url.searchParams.get('limit')).toBe('10');
    expect(r.url.searchParams.get('exact')).toBe('true');
    expect(r.url.search).not.toContain(' ');
    expect(r.url.search).not.toContain('#');
    expect(r.url.search).toContain('%26');
  });
});

describe('body', () => {
  it('a string that is exactly one template keeps the JSON type of the value', () => {
    const r = renderRequest(
      node({
        method: 'POST',
        body: { amount: '{{context.amount}}', approved: '{{context.ok}}', payee: '{{context.payee}}', tags: ['{{context.tag}}', 'fixed'], note: 'ref {{context.ref}}', n: 7, nil: null },
      }),
      { amount: 12.5, ok: true, payee: { iban: 'DE00', name: 'A "B"' }, tag: 't1', ref: 99 },
    );
    expect(r.body?.contentType).toBe('application/json');
    expect(JSON.parse(r.body?.payload ?? 'null')).toEqual({
      amount: 12.5,
      approved: true,
      payee: { iban: 'DE00', name: 'A "B"' },
      tags: ['t1', 'fixed'],
      note: 'ref 99',
      n: 7,
      nil: null,
    });
  });

  it('a string body is sent as text, values inserted as is', () => {
    const r = renderRequest(node({ method: 'PUT', body: 'id={{context.id}}&x=1' }), { id: 'a b' });
    expect(r.body).toEqual({ payload: 'id=a b&x=1', contentType: 'text/plain; charset=utf-8' });
  });

  it('GET and HEAD send no body', () => {
    expect(renderRequest(node({ method: 'GET', body: { a: 1 } }), {}).body).toBeUndefined();
    expect(renderRequest(node({ method: 'HEAD', body: 'x' }), {}).body).toBeUndefined();
  });
});

describe('content types and JSON text bodies', () => {
  it.each([
    [' Application/X-WWW-Form-URLEncoded , text/plain', 'application/x-www-form-urlencoded'],
    ['application/x-www-form-urlencoded,text/plain', 'application/x-www-form-urlencoded'],
    ['application/json;charset=utf-8', 'application/json'],
    ['text/plain application/x-www-form-urlencoded', 'text/plain'],
    ['', ''],
  ])('the media type of "%s" is its first token: %s', (contentType, type) => {
    expect(mediaTypeOf(contentType)).toBe(type);
  });

  it('templates are placed by JSON string-literal rules, escaped quotes and backslashes included', () => {
    expect(jsonSlots('["{{context.a}}", {{context.b}}, "x\\{{context.c}}"]')).toEqual(['string', 'value', 'escape']);
    expect(jsonSlots('{"a":"x\\"{{context.v}}"}')).toEqual(['string']);
    expect(jsonSlots('{"a":"x\\\\", "b": {{context.v}}}')).toEqual(['value']);
  });

  it('a value after an escaped quote is still inside the string, and escaped', () => {
    const r = renderRequest(node({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":"x\\"{{context.v}}"}' }), { v: '"}, "b": {"c' });
    expect(JSON.parse(r.body?.payload ?? 'null')).toEqual({ a: 'x""}, "b": {"c' });
  });
});

describe('headers', () => {
  it('renders header values; names are lower-cased', () => {
    const r = renderRequest(node({ headers: { 'X-Trace-Id': 'trace-{{context.trace}}', Accept: 'application/json' } }), { trace: 'abc' });
    expect(r.headers).toEqual({ 'x-trace-id': 'trace-abc', accept: 'application/json' });
  });

  it.each([
    ['CR LF', 'abc\r\nX-Injected: 1'],
    ['LF', 'abc\nX-Injected: 1'],
    ['CR', 'abc\rX-Injected: 1'],
    ['NUL', 'abc\0def'],
  ])('rejects a rendered value with %s (header injection)', (_label, value) => {
    const error = renderError(node({ headers: { 'x-trace': '{{context.v}}' } }), { v: value });
    expect(error.field).toBe('/request/headers/x-trace');
  });
});

describe('missing and invalid variables', () => {
  it('a missing variable names the variable and the field', () => {
    const error = renderError(node({ url: 'https://api.example/{{context.customer.id}}' }), { customer: {} });
    expect(error.message).toContain('context.customer.id');
    expect(error.field).toBe('/request/url');
  });

  it('missing variables in query, headers and body name their field', () => {
    expect(renderError(node({ query: { q: '{{context.q}}' } }), {}).field).toBe('/request/query/q');
    expect(renderError(node({ headers: { 'x-a': '{{context.a}}' } }), {}).field).toBe('/request/headers/x-a');
    const body = renderError(node({ method: 'POST', body: { list: [{ deep: '{{context.deep}}' }] } }), {});
    expect(body.field).toBe('/request/body/list/0/deep');
    expect(body.message).toContain('context.deep');
  });

  it('null and undefined values count as missing', () => {
    renderError(node({ url: 'https://api.example/{{context.v}}' }), { v: null });
    renderError(node({ url: 'https://api.example/{{context.v}}' }), { v: undefined });
  });

  it('a path through a scalar is missing, not a property of the scalar', () => {
    renderError(node({ url: 'https://api.example/{{context.s.length}}' }), { s: 'abc' });
  });
});

describe('no prototype access, no code', () => {
  it.each([
    '{{context.__proto__}}',
    '{{context.constructor}}',
    '{{context.constructor.name}}',
    '{{context.toString}}',
    '{{context.hasOwnProperty}}',
    '{{context.a.__proto__}}',
    '{{context.a.constructor.prototype}}',
    '{{context.list.map}}',
  ])('%s is refused, not resolved through the prototype chain', (template) => {
    renderError(node({ url: `https://api.example/${template}` }), { a: {}, list: [1, 2] });
  });

  it.each([
    '{{this}}',
    '{{process.env.HOME}}',
    "{{constructor.constructor('return process')()}}",
    '{{context.a + 1}}',
    '{{context["a"]}}',
    '{{context.a()}}',
    '{{ }}',
    '{{context..a}}',
    '{{context.a.}}',
  ])('%s is not a supported template', (template) => {
    renderError(node({ url: `https://api.example/${template}` }), { a: 'x' });
  });

  it('own properties named like prototype members are plain data', () => {
    const context = JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": "c"}') as Record<string, unknown>;
    expect(renderString('{{context.constructor}}', context, '/x')).toBe('c');
    expect(renderString('{{context.__proto__.polluted}}', context, '/x')).toBe('yes');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('array elements and own data properties such as length are plain data', () => {
    expect(renderString('{{context.list.1}}/{{context.list.length}}', { list: ['a', 'b'] }, '/x')).toBe('b/2');
  });

  it('works on a context without a prototype', () => {
    const context = Object.assign(Object.create(null) as Record<string, unknown>, { id: 7 });
    expect(renderString('{{context.id}}', context, '/x')).toBe('7');
  });

  it('rendering never mutates the context', () => {
    const context = { a: { b: [1, 2] }, s: 'x' };
    const snapshot = structuredClone(context);
    renderRequest(node({ method: 'POST', url: 'https://api.example/{{context.s}}', body: { v: '{{context.a}}' } }), context);
    expect(context).toEqual(snapshot);
  });
});
