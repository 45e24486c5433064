/**
 * OCSP stapling against a PKI run by the openssl CLI (`openssl ca` with index files, `-revoke`)
 * and staples made by `openssl ocsp -index` (signed by the issuer or a delegated responder):
 * nginx (`ssl_stapling_file`) and `openssl s_server -status_file` backends. Good, revoked,
 * foreign and forged staples, no staple under each mode, session resumption, `--tls-only`.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { invoke } from '../../src/invoke/execute.js';
import { checkHandshake } from '../../src/invoke/handshake-check.js';
import { AgentPool } from '../../src/tls/agents.js';
import { probeOf, type ConnectionProbe } from '../../src/tls/probe.js';
import { revocationEvents, type RevocationCheck } from '../../src/tls/revocation.js';
import { profileDeps } from '../helpers/deps.js';
import { createOpensslPki, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';
import { startNginx, type Nginx } from '../helpers/peers.js';
import { startConnectProxy, startOpensslServer, type OpensslServer } from '../helpers/servers.js';

const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000 };

let dir: string;
let pki: OpensslPki;
let good: OpensslIssued;
let revoked: OpensslIssued;
let client: OpensslIssued;
let agents: AgentPool;
let nginxGood: Nginx;
let nginxRevoked: Nginx;
const s: Record<'delegated' | 'foreign' | 'forged' | 'none' | 'revokedTls12', OpensslServer | undefined> = { delegated: undefined, foreign: undefined, forged: undefined, none: undefined, revokedTls12: undefined };

type Revocation = NonNullable<ProfileDocument['trust']>['revocation'];

function node(port: number, path = '/', extra: Partial<NodeDefinition> = {}): NodeDefinition {
  return { id: 'ocsp', request: { method: 'GET', url: `https://localhost:${port}${path}` }, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry: { limit: 0 }, ...extra };
}

async function deps(revocation: Revocation): Promise<ReturnType<typeof profileDeps>> {
  const file = join(dir, 'profiles', 'bank.json');
  const doc: ProfileDocument = { client: { certificate: client.cert, key: client.key }, trust: { ca: [pki.root.cert, pki.intermediate.cert], ...(revocation ? { revocation } : {}) } };
  writeFileSync(file, JSON.stringify(doc));
  return profileDeps(new Map([['bank', await loadProfile(file)]]), agents);
}

async function call(port: number, revocation: Revocation, path = '/'): Promise<Awaited<ReturnType<typeof invoke>>> {
  return invoke(node(port, path), {}, await deps(revocation));
}

const seen: RevocationCheck[] = [];
const listener = (c: RevocationCheck): void => void seen.push(c);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-ocsp-'));
  mkdirSync(join(dir, 'profiles'));
  pki = createOpensslPki(dir);
  good = pki.issueServer('good');
  revoked = pki.issueServer('revoked');
  const other = pki.issueServer('other');
  client = pki.issueClient('bot');
  const responder = pki.issueResponder('Bank OCSP Responder');
  pki.revoke(pki.intermediate, revoked.cert);
  const ca = pki.intermediate;
  const staple = {
    good: pki.ocspResponse(ca, good.cert, join(dir, 'good.der')),
    delegated: pki.ocspResponse(ca, good.cert, join(dir, 'good-delegated.der'), { signer: responder }),
    revoked: pki.ocspResponse(ca, revoked.cert, join(dir, 'revoked.der')),
    other: pki.ocspResponse(ca, other.cert, join(dir, 'other.der')),
    forged: join(dir, 'forged.der'),
  };
  // The issuer's staple with the last byte of its ECDSA signature changed: still DER, no longer signed.
  const bytes = readFileSync(staple.good);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0x01, bytes.length - 1);
  writeFileSync(staple.forged, bytes);
  const withChain = (leaf: OpensslIssued): string => {
    const file = `${leaf.cert}.chain.pem`;
    writeFileSync(file, readFileSync(leaf.cert, 'utf8') + readFileSync(ca.cert, 'utf8'));
    return file;
  };
  const clientCa = join(dir, 'client-ca.pem');
  writeFileSync(clientCa, readFileSync(pki.root.cert, 'utf8') + readFileSync(ca.cert, 'utf8'));
  const serve = (statusFile?: string, leaf = good, tls: '1.2' | 'both' = 'both'): Promise<OpensslServer> =>
    startOpensslServer({ certFile: leaf.cert, keyFile: leaf.key, chainFile: ca.cert, verify: 'none', tls, ...(statusFile ? { statusFile } : {}) });
  [nginxGood, nginxRevoked, s.delegated, s.foreign, s.forged, s.none, s.revokedTls12] = await Promise.all([
    startNginx({ certFile: withChain(good), keyFile: good.key, clientCaFile: clientCa, stapleFile: staple.good }),
    startNginx({ certFile: withChain(revoked), keyFile: revoked.key, clientCaFile: clientCa, stapleFile: staple.revoked }),
    serve(staple.delegated),
    serve(staple.other),
    serve(staple.forged),
    serve(),
    serve(staple.revoked, revoked, '1.2'),
  ]);
  revocationEvents.on('check', listener);
}, 30_000);

beforeEach(() => {
  agents = new AgentPool();
  seen.length = 0;
});

afterEach(() => {
  agents.destroy();
});

afterAll(async () => {
  revocationEvents.off('check', listener);
  await Promise.all([nginxGood?.close(), nginxRevoked?.close(), ...Object.values(s).map((x) => x?.close())]);
  await rm(dir, { recursive: true, force: true });
});

describe('a verified staple', () => {
  it('nginx stapling the issuer-signed response of a good certificate: the call succeeds with an ok OCSP check', async () => {
    const r = await call(nginxGood.port, { ocsp: 'stapled-required' }, '/json');
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.status).toBe(200);
    // nginx logs each request it got: what makes the zero of the revoked case below meaningful.
    expect(nginxGood.requests('/json')).toBe(1);
    expect(seen).toEqual([{ profile: 'bank', result: 'ok', source: 'ocsp', subject: 'CN=localhost' }]);
  });

  it('s_server stapling a response signed by a delegated OCSPSigning responder: ok', async () => {
    const r = await call(s.delegated?.port ?? 0, { ocsp: 'stapled-if-present' });
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(seen.map((c) => [c.source, c.result])).toEqual([['ocsp', 'ok']]);
  });

  it('the verdict is stored on the connection probe', async () => {
    const d = await deps({ ocsp: 'stapled-required' });
    let probe: ConnectionProbe | undefined;
    const r = await checkHandshake(node(nginxGood.port), {}, { ...d, onSocket: (socket) => void setImmediate(() => (probe = probeOf(socket))) });
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(probe?.revocation).toEqual([{ profile: 'bank', result: 'ok', source: 'ocsp', subject: 'CN=localhost' }]);
  });
});

describe('failing staples', () => {
  it('a revoked leaf fails as server_cert_revoked before any HTTP byte, naming subject, serial, time and the OCSP staple', async () => {
    const r = await call(nginxRevoked.port, { ocsp: 'stapled-if-present' }, '/json');
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.code).toBe('SVCNODE_OCSP_REVOKED');
    expect(r.failure?.hint).toContain('CN=localhost');
    expect(r.failure?.hint).toContain(`serial ${revoked.serial.replace(/^0+/, '')}`);
    expect(r.failure?.hint).toMatch(/revoked on \d{4}-\d{2}-\d{2}T[^ ]+Z \(keyCompromise\)/);
    expect(r.failure?.hint).toContain('OCSP staple');
    // The backend is named host:port, as in every other failure message.
    expect(`${r.failure?.message ?? ''} ${r.failure?.hint ?? ''}`).toContain(`of localhost:${nginxRevoked.port}`);
    expect(nginxRevoked.requests('/')).toBe(0);
    expect(seen.map((c) => [c.source, c.result])).toEqual([['ocsp', 'revoked']]);
  });

  it('TLS 1.2 (the staple in a CertificateStatus message): a revoked leaf fails the same way', async () => {
    const r = await call(s.revokedTls12?.port ?? 0, { ocsp: 'stapled-required' });
    expect(r.failure?.code, JSON.stringify(r.failure)).toBe('SVCNODE_OCSP_REVOKED');
    expect(r.tls?.protocol).toBe('TLSv1.2');
  });

  it('through a CONNECT proxy the staple is judged the same way', async () => {
    const proxy = await startConnectProxy();
    try {
      const d = await deps({ ocsp: 'stapled-if-present' });
      const bad = await invoke(node(nginxRevoked.port, '/json', { proxy: { url: proxy.url } }), {}, d);
      expect(bad.failure?.code, JSON.stringify(bad.failure)).toBe('SVCNODE_OCSP_REVOKED');
      const ok = await invoke(node(nginxGood.port, '/json', { proxy: { url: proxy.url } }), {}, d);
      expect(ok.failure, JSON.stringify(ok.failure)).toBeNull();
      expect(proxy.tunnels).toBe(2);
      expect(seen.map((c) => c.result)).toEqual(['revoked', 'ok']);
    } finally {
      await proxy.close();
    }
  });

  it('dry-run --tls-only reports the same verdict (it goes through the same agents)', async () => {
    const r = await checkHandshake(node(nginxRevoked.port), {}, await deps({ ocsp: 'stapled-if-present' }));
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_revoked');
    expect(r.failure?.code).toBe('SVCNODE_OCSP_REVOKED');
  });

  it('a staple about another serial fails with SVCNODE_OCSP_STAPLE_MISMATCH', async () => {
    const r = await call(s.foreign?.port ?? 0, { ocsp: 'stapled-if-present' });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_untrusted');
    expect(r.failure?.code).toBe('SVCNODE_OCSP_STAPLE_MISMATCH');
    expect(r.failure?.message).toContain(`serial ${good.serial.replace(/^0+/, '')}`);
  });

  it('a staple whose signature does not verify fails with SVCNODE_OCSP_STAPLE_INVALID, also in soft mode', async () => {
    for (const mode of ['hard', 'soft'] as const) {
      const r = await call(s.forged?.port ?? 0, { ocsp: 'stapled-if-present', mode });
      expect(r.failure?.code, JSON.stringify(r.failure)).toBe('SVCNODE_OCSP_STAPLE_INVALID');
      expect(r.failure?.category).toBe('server_cert_untrusted');
    }
  });
});

describe('no staple', () => {
  it('stapled-required in hard mode fails with server_cert_revocation_unknown', async () => {
    const r = await call(s.none?.port ?? 0, { ocsp: 'stapled-required' });
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('server_cert_untrusted');
    expect(r.failure?.code).toBe('server_cert_revocation_unknown');
    expect(r.failure?.hint).toContain('stapling');
    expect(r.failure?.message).toContain(`localhost:${s.none?.port ?? 0} sent no OCSP staple`);
  });

  it('stapled-required in soft mode proceeds and records an unknown OCSP check', async () => {
    const r = await call(s.none?.port ?? 0, { ocsp: 'stapled-required', mode: 'soft' });
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(seen.map((c) => [c.source, c.result])).toEqual([['ocsp', 'unknown']]);
  });

  it('stapled-if-present proceeds without a check', async () => {
    const r = await call(s.none?.port ?? 0, { ocsp: 'stapled-if-present' });
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(seen).toEqual([]);
  });
});

describe('TLS session resumption', () => {
  it('with stapling on, every new connection makes a full handshake and gets its own verdict', async () => {
    const d = await deps({ ocsp: 'stapled-if-present' });
    // s_server -www closes each connection after its response, so each call opens a new one.
    const first = await invoke(node(s.delegated?.port ?? 0), {}, d);
    const second = await invoke(node(s.delegated?.port ?? 0), {}, d);
    expect(second.failure, JSON.stringify(second.failure)).toBeNull();
    expect([first.tls?.sessionReused, second.tls?.sessionReused]).toEqual([false, false]);
    expect(seen.map((c) => c.result)).toEqual(['ok', 'ok']);
  });

  it('control: the same server resumes the session when stapling is off', async () => {
    const d = await deps(undefined);
    await invoke(node(s.delegated?.port ?? 0), {}, d);
    const second = await invoke(node(s.delegated?.port ?? 0), {}, d);
    expect(second.tls?.sessionReused, JSON.stringify(second.failure)).toBe(true);
  });
});
