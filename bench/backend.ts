/**
 * Bench backend, run in its own process: a Node https server that demands and verifies a client
 * certificate (requestCert + rejectUnauthorized) and answers every request with a small JSON body.
 * Mode `close` sends `Connection: close` after every response, so every call is a new TLS
 * handshake. argv: KEY_FILE CERT_FILE CA_FILE MODE. Reports {port} over IPC.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { exitWithParent } from './lib/proc.js';

exitWithParent();
const [keyFile, certFile, caFile, mode] = process.argv.slice(2);
if (!keyFile || !certFile || !caFile || (mode !== 'close' && mode !== 'keepalive')) {
  console.error('usage: backend.js KEY CERT CA close|keepalive');
  process.exit(2);
}
const close = mode === 'close';
let requests = 0;
let connections = 0;
let resumed = 0;

const server = https.createServer(
  {
    key: readFileSync(keyFile),
    cert: readFileSync(certFile),
    ca: readFileSync(caFile),
    requestCert: true,
    rejectUnauthorized: true,
    keepAliveTimeout: 120_000,
  },
  (req, res) => {
    requests++;
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    const body = JSON.stringify({ ok: true, path: req.url, client: peer.subject?.CN ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(close ? { connection: 'close' } : {}) });
    res.end(body);
  },
);
server.on('secureConnection', (socket: TLSSocket) => {
  connections++;
  if (socket.isSessionReused()) resumed++;
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ ready: true, port: (server.address() as AddressInfo).port });
});
process.on('message', (message: { stats?: boolean }) => {
  if (message.stats) {
    process.send?.({ stats: { requests, connections, resumed } });
    requests = connections = resumed = 0;
  }
});
