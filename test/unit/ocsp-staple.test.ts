/**
 * The OCSP staple verifier and the per-mode verdicts on responses made by `openssl ocsp -index`
 * over an `openssl ca` PKI: issuer-signed and delegated responders, revoked, unknown, foreign,
 * forged, wrongly delegated and stale responses (a fake clock around a `-nmin 1` response).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyStaple, type StapleProblem, type StapleStatus } from '../../src/pki/ocsp.js';
import type { LoadedProfile, RevocationPolicy } from '../../src/pki/types.js';
import type { SvcnodeError } from '../../src/errors.js';
import { judgeStaple, ocspStapling, sessionCacheSize } from '../../src/tls/ocsp-stapling.js';
import { newProbe } from '../../src/tls/probe.js';
import { createOpensslPki, type OpensslCa, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';

const MIN = 60_000;
let dir: string;
let pki: OpensslPki;
let issuer: X509Certificate;
let good: OpensslIssued;
let revoked: OpensslIssued;
let stranger: OpensslIssued;
let other: OpensslCa;
const der: Record<string, Buffer> = {};
let issuedAt: number;

const cert = (issued: OpensslIssued | OpensslCa): X509Certificate => new X509Certificate(readFileSync(issued.cert));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-ocsp-unit-'));
  pki = createOpensslPki(dir);
  other = pki.addIntermediate('other', 'Other Issuing CA');
  good = pki.issueServer('good');
  revoked = pki.issueServer('revoked');
  // Signed with the issuing CA's key outside `openssl ca`: its index does not know the serial.
  const csr = join(dir, 'stranger.csr');
  stranger = { cert: join(dir, 'stranger.pem'), key: join(dir, 'stranger.key'), serial: '7A5E' };
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', stranger.key, '-subj', '/CN=stranger', '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', pki.intermediate.cert, '-CAkey', pki.intermediate.key, '-set_serial', '0x7A5E', '-days', '1', '-out', stranger.cert], { stdio: 'ignore' });
  const responder = pki.issueResponder('Bank OCSP Responder');
  const foreignResponder = pki.issueResponder('Other OCSP Responder', other);
  pki.revoke(pki.intermediate, revoked.cert);
  issuer = cert(pki.intermediate);
  const ca = pki.intermediate;
  const make = (name: string, leaf: string, o?: Parameters<OpensslPki['ocspResponse']>[3]): void => {
    der[name] = readFileSync(pki.ocspResponse(ca, leaf, join(dir, `${name}.der`), o));
  };
  issuedAt = Date.now();
  make('good', good.cert);
  make('delegated', good.cert, { signer: responder });
  make('revoked', revoked.cert);
  make('unknown', stranger.cert);
  make('shortLived', good.cert, { minutes: 1 });
  make('noEku', good.cert, { signer: revoked });
  make('foreignResponder', good.cert, { signer: foreignResponder });
  make('otherCa', good.cert, { signer: other });
  make('otherCaNoCerts', good.cert, { signer: other, noCerts: true });
  // Signed by the issuer, but the CertID carries another CA's key hash (`openssl ocsp -issuer OTHER -cert GOOD`).
  make('sameSerialOtherIssuer', good.cert, { issuer: other });
  make('sha1', good.cert, { digest: 'sha1' });
  const forged = Buffer.from(der.good as Buffer);
  forged.writeUInt8(forged.readUInt8(forged.length - 1) ^ 0x01, forged.length - 1);
  der.forged = forged;
}, 30_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const now = (): Date => new Date();

function expectProblem(v: StapleStatus | StapleProblem, problem: StapleProblem['problem'], reason: string): void {
  expect(v.ok ? 'ok' : v.problem, JSON.stringify(v)).toBe(problem);
  if (!v.ok) expect(v.reason).toContain(reason);
}

describe('verifyStaple', () => {
  it('accepts a response signed by the issuer: good, with its dates', () => {
    const v = verifyStaple(der.good as Buffer, cert(good), issuer, now());
    expect(v).toMatchObject({ ok: true, status: 'good', signer: 'CN=Bank Issuing CA' });
    if (v.ok) expect(v.nextUpdate && v.nextUpdate.getTime() - v.thisUpdate.getTime()).toBe(86_400_000);
  });

  it('accepts a delegated responder issued by the issuer with the OCSPSigning EKU', () => {
    expect(verifyStaple(der.delegated as Buffer, cert(good), issuer, now())).toMatchObject({ ok: true, status: 'good', signer: 'CN=Bank OCSP Responder' });
  });

  it('reads a revocation with its time and reason', () => {
    const v = verifyStaple(der.revoked as Buffer, cert(revoked), issuer, now());
    expect(v).toMatchObject({ ok: true, status: 'revoked', reason: 'keyCompromise' });
    if (v.ok) expect(Math.abs((v.revocationTime?.getTime() ?? 0) - issuedAt)).toBeLessThan(5 * MIN);
  });

  it('reads status unknown for a serial the responder does not know', () => {
    const asIfIssuedHere = verifyStaple(der.unknown as Buffer, cert(stranger), issuer, now());
    expect(asIfIssuedHere, JSON.stringify(asIfIssuedHere)).toMatchObject({ ok: true, status: 'unknown' });
  });

  it('refuses a response about another serial', () => {
    expect(verifyStaple(der.good as Buffer, cert(revoked), issuer, now())).toMatchObject({ ok: false, problem: 'mismatch' });
  });

  it('refuses a response whose CertID names another issuer with the same serial', () => {
    expect(verifyStaple(der.good as Buffer, cert(good), cert(other), now())).toMatchObject({ ok: false });
    const v = verifyStaple(der.sameSerialOtherIssuer as Buffer, cert(good), issuer, now());
    expect(v, JSON.stringify(v)).toMatchObject({ ok: false, problem: 'mismatch' });
    // Before: "about serial 1000, not the server certificate … (serial 1000)".
    expectProblem(v, 'mismatch', `about serial ${good.serial.replace(/^0+/, '')} of another issuer`);
  });

  it('a response signed with SHA-1 is refused by name, not by OID', () => {
    expectProblem(verifyStaple(der.sha1 as Buffer, cert(good), issuer, now()), 'invalid', 'signed with SHA-1 with ECDSA, which svcnode refuses');
  });

  it('refuses a forged signature, a signer without OCSPSigning, a responder of another CA, another CA as signer', () => {
    expectProblem(verifyStaple(der.forged as Buffer, cert(good), issuer, now()), 'invalid', 'does not verify');
    expectProblem(verifyStaple(der.noEku as Buffer, cert(good), issuer, now()), 'invalid', 'OCSPSigning');
    expectProblem(verifyStaple(der.foreignResponder as Buffer, cert(good), issuer, now()), 'invalid', 'not issued by');
    expectProblem(verifyStaple(der.otherCa as Buffer, cert(good), issuer, now()), 'invalid', 'not issued by');
    expectProblem(verifyStaple(der.otherCaNoCerts as Buffer, cert(good), issuer, now()), 'invalid', 'signed by neither');
  });

  it('refuses bytes that are no OCSP response, and an unsuccessful response', () => {
    expect(verifyStaple(Buffer.from('not der'), cert(good), issuer, now())).toMatchObject({ ok: false, problem: 'invalid' });
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED tryLater(3) }
    expectProblem(verifyStaple(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]), cert(good), issuer, now()), 'invalid', 'tryLater');
  });

  it('a response past nextUpdate (beyond 5 minutes of skew) is stale; within the skew it is current', () => {
    const leaf = cert(good);
    expect(verifyStaple(der.shortLived as Buffer, leaf, issuer, new Date(issuedAt + 4 * MIN))).toMatchObject({ ok: true, status: 'good' });
    expectProblem(verifyStaple(der.shortLived as Buffer, leaf, issuer, new Date(issuedAt + 10 * MIN)), 'stale', 'due for renewal');
  });

  it('a response whose thisUpdate is ahead of the clock by more than the skew is not yet valid', () => {
    expectProblem(verifyStaple(der.good as Buffer, cert(good), issuer, new Date(issuedAt - 60 * MIN)), 'stale', 'valid only from');
  });
});

const profile = (ocsp: RevocationPolicy['ocsp'], mode: RevocationPolicy['mode'] = 'hard'): LoadedProfile =>
  ({ name: 'bank', trust: { certificates: [], systemRoots: false, revocation: { ocsp, mode, distributionPoints: false } } }) as unknown as LoadedProfile;

describe('judgeStaple: verdicts per mode', () => {
  const peer = (leaf: OpensslIssued): PeerCertificate => ({ raw: cert(leaf).raw, issuerCertificate: { raw: issuer.raw } }) as unknown as PeerCertificate;
  const late = (): Date => new Date(issuedAt + 10 * MIN);

  it('off: nothing is judged', () => {
    expect(judgeStaple(profile('off'), 'h', peer(revoked), der.revoked, now())).toBeUndefined();
  });

  it('a stale staple fails in hard mode (SVCNODE_OCSP_NO_STATUS) and is an unknown check in soft mode', () => {
    const hard = judgeStaple(profile('stapled-if-present'), 'h', peer(good), der.shortLived, late());
    expect(hard?.error?.code).toBe('SVCNODE_OCSP_NO_STATUS');
    expect(hard?.check).toMatchObject({ result: 'unknown', source: 'ocsp' });
    const soft = judgeStaple(profile('stapled-if-present', 'soft'), 'h', peer(good), der.shortLived, late());
    expect(soft?.error).toBeUndefined();
    expect(soft?.check).toMatchObject({ result: 'unknown', source: 'ocsp', subject: 'CN=localhost' });
  });

  it('no staple: nothing under stapled-if-present; stapled-required fails in hard mode, unknown in soft mode', () => {
    expect(judgeStaple(profile('stapled-if-present'), 'h', peer(good), null, now())).toBeUndefined();
    expect(judgeStaple(profile('stapled-required'), 'h', peer(good), null, now())?.error?.code).toBe('SVCNODE_OCSP_NO_STATUS');
    const soft = judgeStaple(profile('stapled-required', 'soft'), 'h', peer(good), undefined, now());
    expect([soft?.check.result, soft?.error]).toEqual(['unknown', undefined]);
  });

  it('status unknown fails in hard mode', () => {
    expect(judgeStaple(profile('stapled-if-present'), 'h', { raw: cert(stranger).raw, issuerCertificate: { raw: issuer.raw } } as unknown as PeerCertificate, der.unknown, now())?.error?.code).toBe('SVCNODE_OCSP_NO_STATUS');
  });

  it('revoked fails in both modes with a hint naming subject, serial, time and the OCSP staple', () => {
    for (const mode of ['hard', 'soft'] as const) {
      const v = judgeStaple(profile('stapled-if-present', mode), 'bank.example', peer(revoked), der.revoked, now());
      expect(v?.error?.code).toBe('SVCNODE_OCSP_REVOKED');
      expect(v?.check.result).toBe('revoked');
      expect(v?.error?.hint).toMatch(new RegExp(`certificate "CN=localhost" \\(serial ${revoked.serial.replace(/^0+/, '')}\\) of bank.example was revoked on \\d{4}-.+Z \\(keyCompromise\\) according to its OCSP staple`));
    }
  });

  it('forged and foreign staples fail in soft mode too', () => {
    expect(judgeStaple(profile('stapled-if-present', 'soft'), 'h', peer(good), der.forged, now())?.error?.code).toBe('SVCNODE_OCSP_STAPLE_INVALID');
    expect(judgeStaple(profile('stapled-if-present', 'soft'), 'h', peer(revoked), der.good, now())?.error?.code).toBe('SVCNODE_OCSP_STAPLE_MISMATCH');
  });
});

describe('ocspStapling', () => {
  it('is off without a stapling mode, and then caches sessions as configured', () => {
    expect(ocspStapling(profile('off'), newProbe('direct'))).toBeUndefined();
    expect([sessionCacheSize(profile('off'), 100), sessionCacheSize(profile('stapled-if-present'), 100)]).toEqual([100, 0]);
  });

  it('asks for a staple, and its checker never throws (Node calls it without a try): an unreadable certificate fails the handshake', () => {
    const probe = newProbe('direct');
    const options = ocspStapling(profile('stapled-required'), probe)?.options({ checkServerIdentity: () => undefined });
    expect(options?.requestOCSP).toBe(true);
    const error = options?.checkServerIdentity('h', { raw: Buffer.from('not a certificate') } as PeerCertificate);
    expect((error as SvcnodeError | undefined)?.code).toBe('SVCNODE_OCSP_STAPLE_INVALID');
    expect(probe.revocation?.map((c) => [c.source, c.result])).toEqual([['ocsp', 'unknown']]);
  });

  it('keeps the host name check when the connection had no checker of its own', () => {
    const options = ocspStapling(profile('stapled-if-present'), newProbe('direct'))?.options({});
    const error = options?.checkServerIdentity('other.example', { raw: cert(good).raw, subject: { CN: 'localhost' }, subjectaltname: 'DNS:localhost' } as unknown as PeerCertificate);
    expect(error).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});
