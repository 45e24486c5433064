/**
 * Response bodies as backends really frame and label them: a coded (gzip, deflate, br) body that
 * turns out empty only at its last chunk, a zlib-wrapped deflate body whose first chunk is one
 * byte, and JSON or text in a declared charset other than UTF-8 or behind a UTF-8 byte-order mark.
 * A real mTLS server, certificates minted per run.
 */
import { brotliCompressSync, deflateRawSync, deflateSync } from 'node:zlib';
import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { useBankFixture } from '../helpers/bank-fixture.js';

const bank = useBankFixture();

function node(url: string): NodeDefinition {
  return { id: 'decoding', request: { method: 'GET', url }, tls: { profile: 'bank' }, retry: { limit: 1, backoffMs: 10, maxBackoffMs: 20 }, timeouts: { responseMs: 3_000 } };
}

/** A server answering 200 with `headers` and `parts`; its URL. The body goes out chunked (no Content-Length), each part as its own chunk. */
async function chunked(headers: http.OutgoingHttpHeaders, parts: Buffer[], gapMs = 0): Promise<string> {
  const s = await bank.serve({
    handler: async (req, res) => {
      req.resume();
      res.writeHead(200, { ...headers, 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      for (const part of parts) {
        res.write(part);
        if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
      }
      res.end();
    },
  });
  return `https://localhost:${s.port}/`;
}

describe('a coded body that is empty (chunked, no Content-Length) is no body: ok, body null', () => {
  it.each(['gzip', 'deflate', 'br', 'gzip, br'])('Content-Encoding: %s', async (coding) => {
    const url = await chunked({ 'content-type': 'application/json', 'content-encoding': coding }, []);
    const r = await invokeWithRetries(node(url), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.status).toBe(200);
    expect(r.response?.body).toBeNull();
    expect(r.attempts).toBe(1);
  });

  it('a coded body that is not empty still decodes, and a corrupt one still fails', async () => {
    const json = Buffer.from('{"balance":"1234.56"}');
    const good = await invokeWithRetries(node(await chunked({ 'content-type': 'application/json', 'content-encoding': 'br' }, [brotliCompressSync(json)])), {}, bank.deps);
    expect(good.response?.body).toEqual({ balance: '1234.56' });
    const bad = await invokeWithRetries(node(await chunked({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, [Buffer.from('not gzip')])), {}, bank.deps);
    expect(bad.failure?.code).toBe('SVCNODE_DECODE_FAILED');
  });
});

describe('deflate: zlib-wrapped or raw, told apart once two bytes are in', () => {
  const json = '{"account":"42","balance":"1234.56"}';

  it.each([
    ['zlib-wrapped, first chunk of 1 byte', deflateSync(json), 1],
    ['zlib-wrapped, first chunk of 2 bytes', deflateSync(json), 2],
    ['raw, first chunk of 1 byte', deflateRawSync(json), 1],
  ] as const)('%s', async (_label, coded, first) => {
    const url = await chunked({ 'content-type': 'application/json', 'content-encoding': 'deflate' }, [coded.subarray(0, first), coded.subarray(first)], 100);
    const r = await invokeWithRetries(node(url), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.body).toEqual(JSON.parse(json));
  });
});

describe('a body is read in the charset its Content-Type declares', () => {
  const json = '{"name":"Café Müller","note":"naïve"}';
  const doc = JSON.parse(json) as unknown;

  async function answer(contentType: string, body: Buffer): Promise<Awaited<ReturnType<typeof invokeWithRetries>>> {
    const s = await bank.serve({
      handler: (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': contentType, 'content-length': body.length }).end(body);
      },
    });
    return invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
  }

  it.each([
    ['utf-16le', Buffer.from(json, 'utf16le')],
    ['utf-16be', Buffer.from(json, 'utf16le').swap16()],
    ['iso-8859-1', Buffer.from(json, 'latin1')],
    ['windows-1252', Buffer.from(json, 'latin1')],
  ])('JSON in %s is parsed', async (charset, body) => {
    const r = await answer(`application/json; charset=${charset}`, body);
    expect(r.ok).toBe(true);
    expect(r.response?.body).toEqual(doc);
    expect(r.response?.bodyEncoding).toBeUndefined();
  });

  it('JSON behind a UTF-8 byte-order mark is parsed', async () => {
    const r = await answer('application/json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]));
    expect(r.response?.body).toEqual(doc);
  });

  it('text in ISO-8859-1 is text, not base64', async () => {
    const r = await answer('text/plain; charset=ISO-8859-1', Buffer.from('Grüße aus Köln', 'latin1'));
    expect(r.response?.body).toBe('Grüße aus Köln');
    expect(r.response?.bodyEncoding).toBeUndefined();
  });
});
