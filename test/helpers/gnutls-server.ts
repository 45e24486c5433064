/**
 * `gnutls-serv --http` on a free loopback port: an independent TLS stack whose priority string
 * can switch off RFC 5746 secure renegotiation (`%DISABLE_SAFE_RENEGOTIATION`), which OpenSSL
 * servers cannot do — the way to reproduce a legacy backend.
 */
import { spawn } from 'node:child_process';
import { LOOPBACK, freePort } from './net.js';
import type { TestServer } from './servers.js';

export interface GnutlsServerOptions {
  certFile: string;
  keyFile: string;
  /** GnuTLS priority string. @defaultValue 'NORMAL' */
  priority?: string;
  /** Trust anchors for client certificates; with it the server requires and verifies one (`--require-client-cert --verify-client-cert`). */
  clientCaFile?: string;
}

export interface GnutlsServer extends TestServer {
  output(): string;
}

/** Spawns gnutls-serv; resolves once it listens. */
export async function startGnutlsServer(o: GnutlsServerOptions): Promise<GnutlsServer> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await spawnGnutls(o, await freePort());
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

function spawnGnutls(o: GnutlsServerOptions, port: number): Promise<GnutlsServer> {
  const args = ['--http', '--port', String(port), '--x509certfile', o.certFile, '--x509keyfile', o.keyFile, '--priority', o.priority ?? 'NORMAL', ...(o.clientCaFile ? ['--x509cafile', o.clientCaFile, '--require-client-cert', '--verify-client-cert'] : [])];
  const child = spawn('gnutls-serv', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  return new Promise<GnutlsServer>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gnutls-serv did not start within 10 s:\n${out}`));
    }, 10_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString('utf8');
      if (/listening on IPv4/.test(out) && /done/.test(out)) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.stderr.off('data', onData);
        child.stdout.resume();
        child.stderr.resume();
        let closed = false;
        resolve({
          host: LOOPBACK,
          port,
          url: `https://${LOOPBACK}:${port}`,
          output: () => out,
          close: async () => {
            if (closed) return;
            closed = true;
            child.kill('SIGTERM');
            await exited;
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' ? new Error('gnutls-serv not found on PATH (apt-get install -y gnutls-bin)', { cause: err }) : err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gnutls-serv exited early (code ${code}):\n${out}`));
    });
  });
}
