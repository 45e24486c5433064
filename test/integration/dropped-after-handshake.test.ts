/**
 * A TLS 1.3 backend that drops its connections (a restart, a drain) closes new ones right after
 * the handshake without a byte: on the wire that is what a server rejecting our certificate after
 * the handshake does too. Before, such a close was always reported as client_cert_rejected (not
 * retried, and the alert pages on-call) even seconds after the backend answered the same
 * certificate. Now, within a minute of an answer to the same identity on that origin, it is a
 * connection failure (retried); with no such answer, it stays the certificate's verdict.
 * A real TLS 1.3 server asking for our certificate.
 */
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invoke } from '../../src/invoke/execute.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { profileDeps, withAgents } from '../helpers/deps.js';
import { closeServer, listen } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

describe('a TLS 1.3 backend closing connections right after the handshake', () => {
  let pki: TestPki;
  let profile: LoadedProfile;
  let server: https.Server;
  let port: number;
  let dropping = false;
  const sockets = new Set<TLSSocket>();

  beforeAll(async () => {
    pki = await createTestPki();
    profile = await loadProfile(pki.profile('bank'));
    server = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (_req, res) => res.end('{"ok":true}'));
    server.on('secureConnection', (socket: TLSSocket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      if (dropping) socket.destroy();
    });
    port = await listen(server, 0);
  });
  afterAll(async () => {
    await closeServer(server, sockets);
    await pki?.cleanup();
  });

  const node: NodeDefinition = { id: 'drops', request: { method: 'GET', url: 'https://localhost:PORT/' }, tls: { profile: 'bank' }, retry: { limit: 0 } };
  const at = (): NodeDefinition => ({ ...node, request: { ...node.request, url: `https://localhost:${port}/` } });

  it('seconds after an answer to the same certificate: a connection failure, not a rejection; with no answer before: the rejection', async () => {
    dropping = false;
    await withAgents(async (agents) => {
      const deps = profileDeps(new Map([['bank', profile]]), agents);
      expect((await invoke(at(), {}, deps)).failure).toBeNull();
      // The backend restarts: its connections go, and new ones are closed after the handshake.
      dropping = true;
      // A restarted server has new session ticket keys: the next connection makes a full handshake.
      server.setTicketKeys(randomBytes(48));
      for (const s of sockets) s.destroy();
      // The pool has seen its kept-alive connection close: the next call opens a new one.
      await sleep(100);
      const r = await invoke(at(), {}, deps);
      expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ category: 'connect_failed', code: 'ECONNRESET' });
      expect(r.failure?.message).toContain('after it answered a call with the same client certificate: most likely it dropped its connections');
    });
    // A worker that never had an answer from it (a fresh pool): the close is the certificate's verdict.
    await withAgents(async (agents) => {
      const r = await invoke(at(), {}, profileDeps(new Map([['bank', profile]]), agents));
      expect(r.failure?.category, JSON.stringify(r.failure)).toBe('client_cert_rejected');
    });
  });
});
