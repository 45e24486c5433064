/**
 * TLS settings for legacy backends against real servers: a GnuTLS server without RFC 5746 secure
 * renegotiation (OpenSSL 3 refuses it unless tls.legacyServerConnect), an OpenSSL server limited
 * to TLS 1.2 and one cipher (tls.maxVersion, tls.ciphers), and Apache's post-handshake
 * authentication 403.
 */
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invoke, type InvokeDeps } from '../../src/invoke/execute.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { profileDeps } from '../helpers/deps.js';
import { startGnutlsServer, type GnutlsServer } from '../helpers/gnutls-server.js';
import { listen } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000 };

let pki: TestPki;
let agents: AgentPool;
let deps: InvokeDeps;
let legacy: GnutlsServer;
let ossl: OpensslServer;
let apache: https.Server;
let apachePort: number;

function node(port: number, tls: Partial<NodeDefinition['tls']> = {}, path = '/'): NodeDefinition {
  return { id: 'legacy', request: { method: 'GET', url: `https://localhost:${port}${path}` }, tls: { profile: 'bank', ...tls }, timeouts: TIMEOUTS, retry: { limit: 0 } };
}

beforeAll(async () => {
  pki = await createTestPki();
  const profiles = new Map<string, LoadedProfile>([['bank', await loadProfile(pki.profile('bank'))]]);
  agents = new AgentPool();
  deps = profileDeps(profiles, agents);
  legacy = await startGnutlsServer({ certFile: pki.files.serverChain, keyFile: pki.files.serverKey, priority: 'NORMAL:-VERS-TLS1.3:%DISABLE_SAFE_RENEGOTIATION' });
  ossl = await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, verify: 'none', tls: 'both' });
  // Apache's mod_ssl answer when a per-location SSLVerifyClient needs TLS 1.3 post-handshake auth (AH10158).
  apache = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem }, (req, res) => {
    if ((req.socket as TLSSocket).getProtocol() === 'TLSv1.3') {
      res.writeHead(403, { 'content-type': 'text/html' });
      res.end('<html><body><h1>Forbidden</h1><p>You don\'t have permission to access this resource.Reason: Cannot perform Post-Handshake Authentication.<br /></p></body></html>');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  apachePort = await listen(apache, 0);
}, 30_000);

afterAll(async () => {
  agents?.destroy();
  await Promise.all([legacy?.close(), ossl?.close(), new Promise((r) => (apache ? apache.close(r) : r(undefined)))]);
  apache?.closeAllConnections();
  await pki?.cleanup();
});

describe('a server without secure renegotiation (gnutls-serv %DISABLE_SAFE_RENEGOTIATION)', () => {
  it('fails as protocol_mismatch with a hint naming tls.legacyServerConnect', async () => {
    const r = await invoke(node(legacy.port), {}, deps);
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('protocol_mismatch');
    expect(r.failure?.code).toBe('ERR_SSL_UNSAFE_LEGACY_RENEGOTIATION_DISABLED');
    expect(r.failure?.phase).toBe('tls');
    expect(r.failure?.hint).toContain('tls.legacyServerConnect');
  });

  it('succeeds with tls.legacyServerConnect: true', async () => {
    const r = await invoke(node(legacy.port, { legacyServerConnect: true }), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.status).toBe(200);
    expect(r.tls?.protocol).toBe('TLSv1.2');
  });
});

describe('tls.maxVersion and tls.ciphers (openssl s_server)', () => {
  it('tls.maxVersion TLSv1.2 caps the protocol', async () => {
    const r = await invoke(node(ossl.port, { maxVersion: 'TLSv1.2' }), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.protocol).toBe('TLSv1.2');
    const r13 = await invoke(node(ossl.port), {}, deps);
    expect(r13.tls?.protocol).toBe('TLSv1.3');
  });

  it('tls.ciphers selects the TLS 1.2 cipher', async () => {
    const r = await invoke(node(ossl.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256' }), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.cipher).toBe('ECDHE-RSA-AES128-SHA256');
  });
});

describe("Apache's post-handshake authentication 403", () => {
  it('hints tls.maxVersion "TLSv1.2", and that setting gets through', async () => {
    const r = await invoke(node(apachePort, {}, '/secure'), {}, deps);
    expect(r.failure?.code).toBe('HTTP_403');
    expect(r.failure?.hint).toContain('tls.maxVersion: "TLSv1.2"');
    const fixed = await invoke(node(apachePort, { maxVersion: 'TLSv1.2' }, '/secure'), {}, deps);
    expect(fixed.failure, JSON.stringify(fixed.failure)).toBeNull();
  });
});
