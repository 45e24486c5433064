import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mintCa, mintLeaf, type KeySpec, type MintedCert } from '../../src/pki/mint.js';

/** Client key types compared in the handshake section. */
export const KEY_TYPES = {
  rsa2048: { type: 'rsa', bits: 2048 },
  rsa4096: { type: 'rsa', bits: 4096 },
  ecp256: { type: 'ec', curve: 'P-256' },
} as const satisfies Record<string, KeySpec>;
export type KeyType = keyof typeof KEY_TYPES;

export interface Pki {
  dir: string;
  rootFile: string;
  serverKeyFile: string;
  serverChainFile: string;
  /** Per key type: the client chain (leaf + intermediate) and key files for baselines. */
  clients: Record<KeyType, { certFile: string; keyFile: string }>;
  intermediate: MintedCert;
}

async function writeSecret(file: string, content: string): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
}

/** A throwaway PKI for one run: root → intermediate → server (RSA-2048) and client certificates. */
export async function mintPki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const root = await mintCa({ subject: 'CN=Bench Root CA,O=svcnode bench' });
  const intermediate = await mintCa({ subject: 'CN=Bench Issuing CA,O=svcnode bench', issuer: root, pathLength: 0 });
  const server = await mintLeaf({ subject: 'CN=localhost,O=svcnode bench', issuer: intermediate, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const rootFile = join(dir, 'root.pem');
  const serverKeyFile = join(dir, 'server.key');
  const serverChainFile = join(dir, 'server-chain.pem');
  await writeFile(rootFile, root.certPem);
  await writeSecret(serverKeyFile, server.keyPem);
  await writeFile(serverChainFile, server.certPem + intermediate.certPem);
  const clients = {} as Pki['clients'];
  for (const [name, key] of Object.entries(KEY_TYPES) as [KeyType, KeySpec][]) {
    const leaf = await mintLeaf({ subject: `CN=bench-bot-${name},O=svcnode bench`, issuer: intermediate, usage: 'client', key });
    const certFile = join(dir, `client-${name}-chain.pem`);
    const keyFile = join(dir, `client-${name}.key`);
    await writeFile(certFile, leaf.certPem + intermediate.certPem);
    await writeSecret(keyFile, leaf.keyPem);
    clients[name] = { certFile, keyFile };
  }
  return { dir, rootFile, serverKeyFile, serverChainFile, clients, intermediate };
}

/** A profile file `DIR/NAME.json` (absolute paths to the material). */
export async function writeProfile(profilesDir: string, name: string, client: { certFile: string; keyFile: string }, rootFile: string): Promise<void> {
  await writeFile(join(profilesDir, `${name}.json`), JSON.stringify({ name, client: { certificate: client.certFile, key: client.keyFile }, trust: { ca: [rootFile] } }, null, 2));
}

export async function writeNode(nodesDir: string, id: string, url: string, profile: string): Promise<void> {
  await writeFile(join(nodesDir, `${id}.json`), JSON.stringify({ id, request: { method: 'GET', url }, tls: { profile } }, null, 2));
}

/**
 * The scale fixture: `profiles` profiles, each with its own RSA-2048 client certificate, and
 * `nodes` nodes spread over them and over two origin aliases of the same backend (`localhost`
 * and `127.0.0.1`), each with its own path. Distinct (profile, origin) pairs = profiles × 2.
 */
export async function writeScaleFixture(root: string, pki: Pki, port: number, nodes: number, profiles: number): Promise<{ nodesDir: string; profilesDir: string; nodeIds: string[]; pairs: number }> {
  const nodesDir = join(root, 'nodes');
  const profilesDir = join(root, 'profiles');
  await mkdir(nodesDir, { recursive: true });
  await mkdir(profilesDir, { recursive: true });
  const pad = (n: number, w: number): string => String(n).padStart(w, '0');
  for (let p = 0; p < profiles; p++) {
    const name = `tenant-${pad(p, 2)}`;
    const leaf = await mintLeaf({ subject: `CN=${name}-bot,O=svcnode bench`, issuer: pki.intermediate, usage: 'client' });
    const certFile = join(profilesDir, `${name}-chain.pem`);
    const keyFile = join(profilesDir, `${name}.key`);
    await writeFile(certFile, leaf.certPem + pki.intermediate.certPem);
    await writeSecret(keyFile, leaf.keyPem);
    await writeProfile(profilesDir, name, { certFile, keyFile }, pki.rootFile);
  }
  const nodeIds: string[] = [];
  const pairs = new Set<string>();
  for (let i = 0; i < nodes; i++) {
    const profile = `tenant-${pad(i % profiles, 2)}`;
    const host = Math.floor(i / profiles) % 2 === 0 ? 'localhost' : '127.0.0.1';
    const id = `node-${pad(i, 4)}`;
    await writeNode(nodesDir, id, `https://${host}:${port}/svc/${id}/accounts/{{context.accountId}}`, profile);
    nodeIds.push(id);
    pairs.add(`${profile}@${host}`);
  }
  return { nodesDir, profilesDir, nodeIds, pairs: pairs.size };
}
