import net, { type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { X509Certificate } from 'node:crypto';
import { connect, createSecureContext, type TLSSocket } from 'node:tls';
import type { AgentSpec } from './agents.js';
import { proxyTunnel } from './proxy-tunnel.js';
import { tlsEndpoint } from './endpoint.js';

/** The client-certificate request a server makes, as read from its TLS 1.2 handshake. */
export type CertificateRequestProbe =
  /** `caNamesDer`: the names as sent (DER), to compare with certificates' issuers byte for byte. */
  | { outcome: 'requested'; caNames: string[]; caNamesDer: Buffer[] }
  | { outcome: 'not_requested' }
  /** The server refused TLS 1.2, or the probe could not connect or read the handshake in time. */
  | { outcome: 'unavailable'; reason: string };

const RECORD_HANDSHAKE = 22;
const RECORD_ALERT = 21;
const MSG_CERTIFICATE_REQUEST = 13;
const MSG_SERVER_HELLO_DONE = 14;
/** A server flight larger than this is not a TLS 1.2 handshake worth reading. */
const MAX_FLIGHT_BYTES = 256 * 1024;

/** DER distinguished names → "CN=…, O=…" (@peculiar/x509 is loaded only when names are present). */
async function formatNames(ders: Buffer[]): Promise<string[]> {
  if (ders.length === 0) return [];
  await import('reflect-metadata');
  const { Name } = await import('@peculiar/x509');
  return ders.map((der) => {
    try {
      return new Name(new Uint8Array(der)).toString();
    } catch {
      return `(unreadable name, ${der.length} bytes)`;
    }
  });
}

/** RFC 5246 §7.4.4: certificate_types<1..255>, supported_signature_algorithms<2..2^16-2>, certificate_authorities<0..2^16-1>. */
function caNamesOf(body: Buffer): Buffer[] {
  let o = 1 + (body[0] ?? 0);
  o += 2 + body.readUInt16BE(o);
  const end = o + 2 + body.readUInt16BE(o);
  o += 2;
  const names: Buffer[] = [];
  while (o + 2 <= end && o + 2 <= body.length) {
    const n = body.readUInt16BE(o);
    names.push(body.subarray(o + 2, o + 2 + n));
    o += 2 + n;
  }
  return names;
}

/**
 * Reads the server's first flight (plaintext in TLS 1.2) until its CertificateRequest or
 * ServerHelloDone. Returns undefined while more bytes are needed.
 */
export class ServerFlightReader {
  private records = Buffer.alloc(0);
  private messages = Buffer.alloc(0);

  feed(chunk: Buffer): { caNames: Buffer[] } | 'not_requested' | 'alert' | 'invalid' | undefined {
    this.records = Buffer.concat([this.records, chunk]);
    if (this.records.length + this.messages.length > MAX_FLIGHT_BYTES) return 'invalid';
    while (this.records.length >= 5) {
      const type = this.records[0];
      const length = this.records.readUInt16BE(3);
      if (this.records.length < 5 + length) break;
      const payload = this.records.subarray(5, 5 + length);
      this.records = this.records.subarray(5 + length);
      if (type === RECORD_ALERT) return 'alert';
      if (type !== RECORD_HANDSHAKE) return 'invalid';
      this.messages = Buffer.concat([this.messages, payload]);
    }
    while (this.messages.length >= 4) {
      const type = this.messages[0];
      const length = this.messages.readUIntBE(1, 3);
      if (this.messages.length < 4 + length) break;
      const body = this.messages.subarray(4, 4 + length);
      this.messages = this.messages.subarray(4 + length);
      if (type === MSG_CERTIFICATE_REQUEST) {
        try {
          return { caNames: caNamesOf(body) };
        } catch {
          return 'invalid';
        }
      }
      if (type === MSG_SERVER_HELLO_DONE) return 'not_requested';
    }
    return undefined;
  }
}

/**
 * Ask the server for its TLS 1.2 first flight and read which CAs its CertificateRequest names.
 * Node exposes no API for the certificate_authorities a server sends, and in TLS 1.3 they travel
 * encrypted; in TLS 1.2 they are plaintext. The probe sends only a ClientHello (Node's own, so SNI
 * and ciphers are real) and closes before answering: no certificate and no application byte leaves.
 */
export async function probeCertificateRequest(spec: AgentSpec, timeoutMs: number): Promise<CertificateRequestProbe> {
  const signal = AbortSignal.timeout(timeoutMs);
  const { host, port, servername } = tlsEndpoint(spec.origin, spec.servername);
  let raw: Socket | undefined;
  let tls: TLSSocket | undefined;
  try {
    raw = spec.proxyUrl ? await proxyTunnel({ ...spec, proxyUrl: spec.proxyUrl }, host, port, timeoutMs) : await direct(host, port, signal);
    const socket = raw;
    const reader = new ServerFlightReader();
    const outcome = await new Promise<ReturnType<ServerFlightReader['feed']> | 'closed'>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new Error(`no CertificateRequest or ServerHelloDone within ${timeoutMs} ms`)), { once: true });
      socket.on('data', (chunk: Buffer) => {
        const r = reader.feed(chunk);
        if (r !== undefined) resolve(r);
      });
      socket.once('close', () => resolve('closed'));
      socket.once('error', reject);
      // The server's bytes go to the reader only: Node's TLS client never sees them, so it sends nothing after its ClientHello.
      const wire = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, callback) {
          socket.write(chunk, callback);
        },
      });
      tls = connect({ socket: wire, ...(servername ? { servername } : {}), secureContext: createSecureContext({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), rejectUnauthorized: false });
      tls.on('error', () => undefined);
    });
    if (typeof outcome === 'object') return { outcome: 'requested', caNames: await formatNames(outcome.caNames), caNamesDer: outcome.caNames };
    if (outcome === 'not_requested') return { outcome: 'not_requested' };
    return { outcome: 'unavailable', reason: outcome === 'alert' ? 'the server refused a TLS 1.2 handshake' : outcome === 'closed' ? 'the server closed the TLS 1.2 probe' : 'the server answered the TLS 1.2 probe with something else than a handshake' };
  } catch (error) {
    return { outcome: 'unavailable', reason: error instanceof Error ? error.message : String(error) };
  } finally {
    tls?.destroy();
    raw?.destroy();
  }
}

function direct(host: string, port: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, signal });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Whether a server that lists `caNamesDer` can accept our chain: the DER name of one of its CAs
 * is the issuer or the subject of a certificate we send (leaf and intermediates). An empty list
 * names no CA (the server accepts any issuer it trusts): true.
 */
export async function chainListed(caNamesDer: readonly Buffer[], sent: readonly X509Certificate[]): Promise<boolean> {
  if (caNamesDer.length === 0) return true;
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const ours: Buffer[] = [];
  for (const cert of sent) {
    const parsed = new x509.X509Certificate(new Uint8Array(cert.raw));
    ours.push(Buffer.from(parsed.issuerName.toArrayBuffer()), Buffer.from(parsed.subjectName.toArrayBuffer()));
  }
  return caNamesDer.some((name) => ours.some((own) => own.equals(name)));
}
