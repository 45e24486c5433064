/**
 * A PKI run by the openssl CLI the way a bank's PKI team runs one: `openssl ca` with an index
 * file per CA, `-revoke` and `-gencrl`. Root → intermediate → server leaves, EC P-256 keys.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OpensslCa {
  name: string;
  dir: string;
  cert: string;
  key: string;
  config: string;
}

export interface OpensslIssued {
  cert: string;
  key: string;
  /** Hex serial as openssl prints it. */
  serial: string;
}

export interface OpensslPki {
  root: OpensslCa;
  intermediate: OpensslCa;
  /** Issue a server certificate for localhost/127.0.0.1 from the intermediate (or `o.ca`); `crlUrl` may list several (`a, URI:b`). */
  issueServer(name: string, o?: { crlUrl?: string; ca?: OpensslCa }): OpensslIssued;
  /** Another intermediate CA issued by the root; `crlUrl` names the root's CRL as its distribution point. */
  addIntermediate(name: string, cn: string, o?: { crlUrl?: string }): OpensslCa;
  /** Issue a client certificate from the intermediate. */
  issueClient(name: string): OpensslIssued;
  revoke(ca: OpensslCa, cert: string): void;
  /**
   * Write the CA's CRL to `out` (PEM, or DER with `der`). `lastUpdate`/`nextUpdate` as Dates
   * make stale or not-yet-valid CRLs.
   */
  gencrl(ca: OpensslCa, out: string, o?: { der?: boolean; lastUpdate?: Date; nextUpdate?: Date }): string;
  /** A delegated OCSP responder certificate (extendedKeyUsage OCSPSigning) issued by `ca`. */
  issueResponder(name: string, ca?: OpensslCa): OpensslIssued;
  /**
   * Write a DER OCSP response for `cert` to `out` with `openssl ocsp -index` over `ca`'s index
   * (status good, revoked or unknown as the index says), signed by `signer` (included in the
   * response unless `noCerts`) or by `ca` (not included, so the signature is the last field).
   * `issuer` puts another CA's key hash into the CertID.
   * Valid for `minutes` (`-nmin`), else one day (`-ndays 1`).
   */
  ocspResponse(ca: OpensslCa, cert: string, out: string, o?: { signer?: { cert: string; key: string }; minutes?: number; noCerts?: boolean; issuer?: OpensslCa; digest?: string }): string;
}

function openssl(args: string[], cwd?: string): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
}

/** openssl's UTCTime form YYMMDDHHMMSSZ. */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
}

function caConfig(dir: string): string {
  return `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/newcerts
serial = ${dir}/serial
crlnumber = ${dir}/crlnumber
certificate = ${dir}/ca.pem
private_key = ${dir}/ca.key
default_md = sha256
default_days = 30
default_crl_days = 7
policy = policy_any
copy_extensions = none
unique_subject = no
[ policy_any ]
commonName = supplied
organizationName = optional
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_server ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid
[ v3_ocsp ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
authorityKeyIdentifier = keyid
[ v3_client ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;
}

function newKey(file: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

function caDir(base: string, name: string): OpensslCa {
  const dir = join(base, name);
  mkdirSync(join(dir, 'newcerts'), { recursive: true });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), `${(0x1000 + Math.floor(Math.random() * 0xefff)).toString(16).toUpperCase()}\n`);
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  const config = join(dir, 'ca.cnf');
  writeFileSync(config, caConfig(dir));
  return { name, dir, cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key'), config };
}

function serialOf(cert: string): string {
  return openssl(['x509', '-in', cert, '-noout', '-serial']).trim().replace(/^serial=/, '');
}

/** Sign a CSR with `ca` under `extensions`, optionally adding extra lines to that section. */
function sign(ca: OpensslCa, subject: string, base: string, extensions: string, extra = ''): OpensslIssued {
  const key = `${base}.key`;
  const csr = `${base}.csr`;
  const cert = `${base}.pem`;
  newKey(key);
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  let section = extensions;
  if (extra) {
    const extFile = `${base}.ext`;
    const cfg = readFileSync(ca.config, 'utf8');
    const body = cfg.split(`[ ${extensions} ]\n`)[1]?.split('\n[')[0] ?? '';
    writeFileSync(extFile, `[ custom ]\n${body}\n${extra}\n`);
    section = 'custom';
    openssl(['ca', '-batch', '-config', ca.config, '-extfile', extFile, '-extensions', section, '-in', csr, '-out', cert, '-notext']);
  } else {
    openssl(['ca', '-batch', '-config', ca.config, '-extensions', section, '-in', csr, '-out', cert, '-notext']);
  }
  return { cert, key, serial: serialOf(cert) };
}

export function createOpensslPki(base: string): OpensslPki {
  const root = caDir(base, 'root');
  newKey(root.key);
  openssl(['req', '-x509', '-new', '-key', root.key, '-subj', '/CN=Bank Test Root', '-days', '60', '-config', root.config, '-extensions', 'v3_ca', '-out', root.cert]);
  const addIntermediate = (name: string, cn: string, o: { crlUrl?: string } = {}): OpensslCa => {
    const ca = caDir(base, name);
    const issued = sign(root, `/CN=${cn}`, join(ca.dir, 'ca'), 'v3_ca', o.crlUrl ? `crlDistributionPoints = URI:${o.crlUrl}` : '');
    return Object.assign(ca, { cert: issued.cert, key: issued.key });
  };
  const intermediate = addIntermediate('issuing', 'Bank Issuing CA');
  return {
    root,
    intermediate,
    addIntermediate,
    issueServer: (name, o = {}) => sign(o.ca ?? intermediate, '/CN=localhost', join(base, name), 'v3_server', o.crlUrl ? `crlDistributionPoints = URI:${o.crlUrl}` : ''),
    issueClient: (name) => sign(intermediate, `/CN=${name}`, join(base, name), 'v3_client'),
    revoke: (ca, cert) => void openssl(['ca', '-config', ca.config, '-revoke', cert, '-crl_reason', 'keyCompromise']),
    issueResponder: (name, ca = intermediate) => sign(ca, `/CN=${name}`, join(base, name), 'v3_ocsp'),
    ocspResponse: (ca, cert, out, o = {}) => {
      const signer = o.signer ?? ca;
      openssl(['ocsp', '-index', join(ca.dir, 'index.txt'), '-CA', ca.cert, '-issuer', (o.issuer ?? ca).cert, '-cert', cert, '-rsigner', signer.cert, '-rkey', signer.key, '-respout', out, '-noverify', ...(o.signer && !o.noCerts ? [] : ['-resp_no_certs']), ...(o.minutes ? ['-nmin', String(o.minutes)] : ['-ndays', '1']), ...(o.digest ? ['-rmd', o.digest] : [])]);
      return out;
    },
    gencrl: (ca, out, o = {}) => {
      const pem = `${out}.tmp.pem`;
      const args = ['ca', '-config', ca.config, '-gencrl', '-out', o.der ? pem : out];
      if (o.lastUpdate) args.push('-crl_lastupdate', asn1Time(o.lastUpdate));
      if (o.nextUpdate) args.push('-crl_nextupdate', asn1Time(o.nextUpdate));
      openssl(args);
      if (o.der) openssl(['crl', '-in', pem, '-outform', 'DER', '-out', out]);
      return out;
    },
  };
}
