import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import forge from 'node-forge';
import type { ProfileDocument } from '../../src/definitions/types.js';
import { mintCa, mintLeaf, type KeySpec, type MintedCert } from '../../src/pki/mint.js';

export type { KeySpec, MintedCert };

/** A fresh three-level PKI (root → intermediate → server + client) in a temp dir. */
export interface TestPki {
  /** Fresh temp dir (os.tmpdir()), removed by cleanup(). */
  dir: string;
  root: MintedCert;
  intermediate: MintedCert;
  /** Issued by the intermediate. */
  server: MintedCert;
  /** Issued by the intermediate. */
  client: MintedCert;
  files: {
    root: string;
    intermediate: string;
    serverCert: string;
    serverKey: string;
    /** Leaf + intermediate. */
    serverChain: string;
    clientCert: string;
    clientKey: string;
    /** Leaf + intermediate. */
    clientChain: string;
  };
  /** Write PEM text(s) concatenated into `dir/name` (mode 0600) and return the path. */
  write(name: string, ...pems: string[]): string;
  /** Write `profilesDir/<name>.json` and return its path; default doc: client chain + key, trust.ca [root]. */
  profile(name: string, doc?: ProfileDocument): string;
  profilesDir: string;
  cleanup(): Promise<void>;
}

export interface TestPkiOptions {
  clientKey?: KeySpec;
  serverKey?: KeySpec;
  /** DNS names of the server certificate; 127.0.0.1 is always added as an IP SAN. @defaultValue ['localhost'] */
  serverNames?: string[];
}

export async function createTestPki(o: TestPkiOptions = {}): Promise<TestPki> {
  const root = await mintCa({ subject: 'CN=svcnode Test Root,O=svcnode tests' });
  const intermediate = await mintCa({ subject: 'CN=svcnode Test Intermediate,O=svcnode tests', issuer: root, pathLength: 0 });
  const [server, client] = await Promise.all([
    mintLeaf({
      subject: 'CN=localhost,O=svcnode tests',
      issuer: intermediate,
      usage: 'server',
      dnsNames: o.serverNames ?? ['localhost'],
      ipAddresses: ['127.0.0.1'],
      ...(o.serverKey ? { key: o.serverKey } : {}),
    }),
    mintLeaf({ subject: 'CN=svcnode-bot,O=svcnode tests', issuer: intermediate, usage: 'client', ...(o.clientKey ? { key: o.clientKey } : {}) }),
  ]);

  const dir = mkdtempSync(join(tmpdir(), 'svcnode-pki-'));
  const profilesDir = join(dir, 'profiles');
  mkdirSync(profilesDir);
  const write = (name: string, ...pems: string[]): string => {
    const file = isAbsolute(name) ? name : join(dir, name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''), { mode: 0o600 });
    return file;
  };
  const files = {
    root: write('root.pem', root.certPem),
    intermediate: write('intermediate.pem', intermediate.certPem),
    serverCert: write('server.pem', server.certPem),
    serverKey: write('server.key', server.keyPem),
    serverChain: write('server-chain.pem', server.certPem, intermediate.certPem),
    clientCert: write('client.pem', client.certPem),
    clientKey: write('client.key', client.keyPem),
    clientChain: write('client-chain.pem', client.certPem, intermediate.certPem),
  };
  const profile = (name: string, doc?: ProfileDocument): string => {
    const file = join(profilesDir, `${name}.json`);
    const body: ProfileDocument = doc ?? { client: { certificate: files.clientChain, key: files.clientKey }, trust: { ca: [files.root] } };
    writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
    return file;
  };
  return {
    dir,
    root,
    intermediate,
    server,
    client,
    files,
    write,
    profile,
    profilesDir,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Run `openssl pkcs12 -export` (with `-legacy`: RC2-40/3DES, SHA1 MAC, which Node 20 cannot
 * load natively). The passphrase goes through the environment, never argv. Returns `out`.
 */
export function opensslPkcs12(o: { certFiles: string[]; keyFile: string; out: string; passphrase: string; legacy?: boolean; iterations?: number; extraArgs?: string[] }): string {
  const [leaf, ...rest] = o.certFiles;
  if (leaf === undefined) throw new Error('opensslPkcs12: certFiles must name the leaf certificate first');
  const args = ['pkcs12', '-export', '-in', leaf, '-inkey', o.keyFile, '-out', o.out, '-passout', 'env:SVCNODE_TEST_P12_PASS'];
  if (rest.length > 0) {
    const caFile = `${o.out}.ca.pem`;
    writeFileSync(caFile, rest.map((f) => readFileSync(f, 'utf8')).join('\n'));
    args.push('-certfile', caFile);
  }
  if (o.legacy) args.push('-legacy');
  if (o.iterations !== undefined) args.push('-iter', String(o.iterations));
  if (o.extraArgs) args.push(...o.extraArgs);
  execFileSync('openssl', args, { env: { ...process.env, SVCNODE_TEST_P12_PASS: o.passphrase }, stdio: ['ignore', 'ignore', 'pipe'] });
  return o.out;
}

/**
 * A PKCS#12 file holding several identities (a key and its certificate each), as a Java keystore
 * with two PrivateKeyEntry aliases is: the authenticated safes of single-identity files in one
 * PFX, 3DES, without a MAC (as forge writes it). Returns `out`.
 */
export function multiIdentityPkcs12(out: string, identities: readonly MintedCert[], passphrase: string, o: { secretKey?: boolean; aliases?: readonly string[] } = {}): string {
  const safesOf = (cert: MintedCert, i: number): forge.asn1.Asn1[] => {
    const alias = o.aliases?.[i];
    const pfx = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(cert.keyPem), [forge.pki.certificateFromPem(cert.certPem)], passphrase, { algorithm: '3des', useMac: false, ...(alias === undefined ? {} : { friendlyName: alias }) });
    const authSafe = (((pfx.value as forge.asn1.Asn1[])[1]?.value as forge.asn1.Asn1[])[1]?.value as forge.asn1.Asn1[])[0]?.value as string;
    return forge.asn1.fromDer(authSafe).value as forge.asn1.Asn1[];
  };
  const { Class, Type } = forge.asn1;
  const oid = (dotted: string): forge.asn1.Asn1 => forge.asn1.create(Class.UNIVERSAL, Type.OID, false, forge.asn1.oidToDer(dotted).getBytes());
  const explicit = (inner: forge.asn1.Asn1): forge.asn1.Asn1 => forge.asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [inner]);
  const octets = (bytes: string): forge.asn1.Asn1 => forge.asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, bytes);
  const seq = (items: forge.asn1.Asn1[]): forge.asn1.Asn1 => forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
  // With `secretKey`: a Java SecretKeyEntry too, a secretBag (1.2.840.113549.1.12.10.1.5) holding 16 bytes as an AES key.
  const secretBag = seq([oid('1.2.840.113549.1.12.10.1.5'), explicit(seq([oid('2.16.840.1.101.3.4.1'), explicit(octets('k'.repeat(16)))]))]);
  const secretSafe = seq([oid(forge.pki.oids.data ?? ''), explicit(octets(forge.asn1.toDer(seq([secretBag])).getBytes()))]);
  const safes = seq([...identities.flatMap(safesOf), ...(o.secretKey ? [secretSafe] : [])]);
  const pfx = forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    forge.asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.asn1.integerToDer(3).getBytes()),
    forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
      oid(forge.pki.oids.data ?? ''),
      explicit(octets(forge.asn1.toDer(safes).getBytes())),
    ]),
  ]);
  writeFileSync(out, Buffer.from(forge.asn1.toDer(pfx).getBytes(), 'binary'));
  return out;
}
