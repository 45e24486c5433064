/**
 * Response bodies as backends really frame and label them: a coded (gzip, deflate, br) body that
 * turns out empty only at its last chunk, a zlib-wrapped deflate body whose first chunk is one
 * byte, and JSON or text in a declared charset other than UTF-8 or behind a UTF-8 byte-order mark;
 * stacked codings, bounded in number, whose decoders end with the exchange.
 * A real mTLS server, certificates minted per run.
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { decodedBody } from '../../src/invoke/decode.js';
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

describe('stacked codings: at most five, and the decoders end with the exchange', () => {
  /** `body` coded with `coding` `layers` times, and the Content-Encoding that says so. */
  function stacked(body: Buffer, layers: number, coding: 'gzip' | 'br'): { coded: Buffer; header: string } {
    let coded = body;
    for (let i = 0; i < layers; i++) coded = coding === 'gzip' ? gzipSync(coded) : brotliCompressSync(coded);
    return { coded, header: Array(layers).fill(coding).join(', ') };
  }

  it('five layers decode; a sixth is SVCNODE_UNSUPPORTED_ENCODING at once, naming the count, not retried (before: 2,000 layers cost ~50 s of CPU)', async () => {
    const json = Buffer.from('{"balance":"1234.56"}');
    const five = stacked(json, 5, 'gzip');
    const ok = await invokeWithRetries(node(await chunked({ 'content-type': 'application/json', 'content-encoding': `identity, ${five.header}, identity` }, [five.coded])), {}, bank.deps);
    expect(ok.failure, JSON.stringify(ok.failure)).toBeNull();
    expect(ok.response?.body).toEqual({ balance: '1234.56' });

    const six = stacked(json, 6, 'br');
    const r = await invokeWithRetries(node(await chunked({ 'content-type': 'application/json', 'content-encoding': six.header }, [six.coded])), {}, bank.deps);
    expect(r.failure).toMatchObject({ code: 'SVCNODE_UNSUPPORTED_ENCODING', phase: 'response' });
    expect(r.failure?.hint).toContain('6');
    expect(r.response?.status).toBe(200);
    expect(r.attempts).toBe(1);

    // A corrupt inner layer fails the whole chain.
    const corrupt = await invokeWithRetries(node(await chunked({ 'content-encoding': 'gzip, gzip' }, [gzipSync(Buffer.from('not gzip'))])), {}, bank.deps);
    expect(corrupt.failure?.code).toBe('SVCNODE_DECODE_FAILED');
  });

  it('destroying the decoded stream of a stacked body destroys every stage (before: only the last one)', async () => {
    const made: zlib.Gunzip[] = [];
    const create = zlib.createGunzip.bind(zlib);
    const spy = vi.spyOn(zlib, 'createGunzip').mockImplementation((options) => {
      const stage = create(options);
      made.push(stage);
      return stage;
    });
    const coded = gzipSync(gzipSync(gzipSync(Buffer.alloc(1024 * 1024))));
    // The body arrives, the connection stays open: the stages hold their work.
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-encoding': 'gzip, gzip, gzip' });
      res.write(coded);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, resolve).on('error', reject));
      const body = decodedBody(response, 'GET');
      // Read (and so make every stage) until the innermost gives out its first bytes.
      await new Promise((resolve) => body.once('data', resolve));
      body.pause();
      expect(made).toHaveLength(3);
      body.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(made.map((stage) => stage.destroyed)).toEqual([true, true, true]);
      expect(response.destroyed).toBe(true);
    } finally {
      spy.mockRestore();
      server.closeAllConnections();
      server.close();
    }
  });

  /** The CPU this process (all its threads) uses over a second, after the stage at work finishes its chunk. */
  async function cpuMsOverASecond(): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000;
  }

  /** 1,000,000 empty gzip members: 20 MB that gunzip chews through for ~0.15 s and that decode to nothing (never the body cap). */
  let members: Buffer | undefined;
  const emptyMembers = (): Buffer => (members ??= Buffer.concat(Array<Buffer>(1_000_000).fill(gzipSync(Buffer.alloc(0)))));

  it.each([
    ['the deadline', () => Buffer.alloc(0), { totalMs: 800 }, { category: 'timeout' }],
    // 2 MiB of zeros first: the body is cut at the 1 MiB cap at once.
    ['the body cap', () => gzipSync(Buffer.alloc(2 * 1024 * 1024)), { totalMs: 10_000 }, null],
  ] as const)('a stacked body still inflating at %s burns no CPU after the Result (before: its zlib stages went on for seconds)', async (_when, prefix, timeouts, failure) => {
    // Three gzip layers; the outer two squeeze the members into ~270 bytes, sent 40 times as concatenated
    // members: an 11 KB body that arrives whole at once and takes the inner stages ~5 s to get through.
    const member = gzipSync(gzipSync(Buffer.concat([prefix(), emptyMembers()]), { level: 9 }), { level: 9 });
    const body = Buffer.concat(Array<Buffer>(40).fill(member));
    const s = await bank.serve({
      handler: (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip, gzip, gzip', 'content-length': body.length }).end(body);
      },
    });
    const r = await invokeWithRetries({ ...node(`https://localhost:${s.port}/`), retry: { limit: 0 }, timeouts: { responseMs: 3_000, idleMs: 5_000, ...timeouts } }, {}, bank.deps);
    if (failure) expect(r.failure).toMatchObject(failure);
    else expect(r.response?.truncated).toBe(true);
    // A stage still inflating keeps a core busy (500–1,000 ms of the second); an idle process uses a few.
    expect(await cpuMsOverASecond()).toBeLessThan(250);
  }, 20_000);
});
