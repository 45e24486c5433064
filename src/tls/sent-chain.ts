import type { Socket } from 'node:net';
import { connect, createSecureContext, type TLSSocket } from 'node:tls';
import type { AgentSpec } from './agents.js';
import { tlsEndpoint } from './endpoint.js';
import { peerCertificates } from './probe.js';
import { proxyTunnel } from './proxy-tunnel.js';
import { policyOptions } from './tls-policy.js';

/**
 * A CA certificate that issues nothing (its key was discarded when it was made). A trust store
 * holding only it completes no chain, so Node's detailed peer certificate is then exactly what
 * the server sent; with the profile's trust.ca, Node appends the issuers it finds there, and a
 * server that sends only its leaf looks the same as one that sends its whole chain.
 */
const ISSUES_NOTHING = `-----BEGIN CERTIFICATE-----
MIIBvjCCAWWgAwIBAgIUM1B3yF4xvQYRVA2vVi8BMChQMf8wCgYIKoZIzj0EAwIw
NDEyMDAGA1UEAwwpc3Zjbm9kZSBzZW50LWNoYWluIHByb2JlIChpc3N1ZXMgbm90
aGluZykwIBcNMjYxMjAxMTEzNDQ4WhgPMjEyNjExMDcxMTM0NDhaMDQxMjAwBgNV
BAMMKXN2Y25vZGUgc2VudC1jaGFpbiBwcm9iZSAoaXNzdWVzIG5vdGhpbmcpMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEInNYTZ5CU7fL3ZIfA5lkvYieqIhQ6wgD
W5Z/AHVYgjgRLbONOKUWZdDUmi4uaBCIwP/IU05HT9oyUbiDXgQfQKNTMFEwHQYD
VR0OBBYEFAY15+btWVrmNI4mZAup9KuV+ZAxMB8GA1UdIwQYMBaAFAY15+btWVrm
NI4mZAup9KuV+ZAxMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIg
M6vfNC+QbJQitn4tAVQAiQ+wMAG0P0hIQGGl5RzMoJoCIBCHv2qF48oQHll9rDNa
KvalqCfjPeiFBHHrORs5584g
-----END CERTIFICATE-----
`;

/**
 * The SHA-256 fingerprints of the certificates the server sends, leaf first (Node's colon form),
 * read from a handshake of its own that trusts nothing and presents no client certificate (the
 * server is not verified on it, so nothing of ours is sent), then closed before any HTTP byte.
 * It goes the node's way: through its proxy, with its SNI, protocol versions, ciphers and
 * renegotiation setting (a server that takes only the node's cipher would refuse another). Undefined
 * when the server cannot be reached or shows no certificate within `timeoutMs`.
 */
export async function sentChain(spec: AgentSpec, timeoutMs: number, onSocket?: (socket: TLSSocket) => void): Promise<string[] | undefined> {
  const { host, port, servername } = tlsEndpoint(spec.origin, spec.servername);
  let tunnel: Socket | undefined;
  try {
    if (spec.proxyUrl) tunnel = await proxyTunnel({ ...spec, proxyUrl: spec.proxyUrl }, host, port, timeoutMs);
  } catch {
    return undefined;
  }
  return new Promise((resolve) => {
    let socket: TLSSocket | undefined;
    let done = false;
    const finish = (value: string[] | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket?.destroy();
      tunnel?.destroy();
      resolve(value);
    };
    const read = (): void => {
      const chain = peerCertificates(socket?.getPeerCertificate(true)).map((c) => c.fingerprint256);
      if (chain.length > 0) finish(chain);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    timer.unref();
    try {
      socket = connect({
        ...(tunnel ? { socket: tunnel } : { host, port }),
        ...(servername ? { servername } : {}),
        secureContext: createSecureContext({ ca: ISSUES_NOTHING, minVersion: spec.minVersion ?? 'TLSv1.2', ...policyOptions(spec.policy) }),
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
      });
    } catch {
      finish(undefined);
      return;
    }
    onSocket?.(socket);
    // TLS 1.2: the server's flight (its certificates) has been read when the first key-log line
    // comes; a server that demands a client certificate aborts right after, before 'secureConnect'.
    socket.once('keylog', read);
    socket.once('secureConnect', () => {
      read();
      finish(undefined);
    });
    socket.on('error', () => finish(undefined));
    socket.once('close', () => finish(undefined));
  });
}
