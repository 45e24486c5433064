/** The TLS 1.2 first-flight reader behind `dry-run --tls-only`'s CA names: fragmentation, alerts, no request. */
import 'reflect-metadata';
import { Name } from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { ServerFlightReader } from '../../src/tls/certificate-request.js';

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
const message = (type: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([type, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
/** Handshake bytes cut into records of at most `size` bytes, as a server may send them. */
function records(bytes: Buffer, size: number, type = 22): Buffer {
  const out: Buffer[] = [];
  for (let o = 0; o < bytes.length; o += size) {
    const part = bytes.subarray(o, o + size);
    out.push(Buffer.from([type, 3, 3]), u16(part.length), part);
  }
  return Buffer.concat(out);
}
const der = (dn: string): Buffer => Buffer.from(new Name(dn).toArrayBuffer());

const names = [der('CN=svcnode Test Root, O=svcnode tests'), der('CN=Partner Bank Root, O=Partner')];
const certificateRequest = message(13, Buffer.concat([Buffer.from([2, 1, 64]), vec16(Buffer.from([4, 1, 8, 4])), vec16(Buffer.concat(names.map(vec16)))]));
const serverHello = message(2, Buffer.alloc(70, 1));
const certificate = message(11, Buffer.alloc(900, 2));
const done = message(14, Buffer.alloc(0));

function feedAll(reader: ServerFlightReader, bytes: Buffer, chunk: number): ReturnType<ServerFlightReader['feed']> {
  for (let o = 0; o < bytes.length; o += chunk) {
    const r = reader.feed(bytes.subarray(o, o + chunk));
    if (r !== undefined) return r;
  }
  return undefined;
}

describe('ServerFlightReader', () => {
  it.each([1, 7, 4096])('reads the CA names of a CertificateRequest split over records, fed %i bytes at a time', (chunk) => {
    const flight = records(Buffer.concat([serverHello, certificate, certificateRequest, done]), 100);
    expect(feedAll(new ServerFlightReader(), flight, chunk)).toEqual({ caNames: names });
  });

  it('an empty certificate_authorities list is a request naming no CA', () => {
    const empty = message(13, Buffer.concat([Buffer.from([1, 1]), vec16(Buffer.from([4, 1])), vec16(Buffer.alloc(0))]));
    expect(feedAll(new ServerFlightReader(), records(Buffer.concat([serverHello, empty, done]), 512), 512)).toEqual({ caNames: [] });
  });

  it('ServerHelloDone without a CertificateRequest: not requested', () => {
    expect(feedAll(new ServerFlightReader(), records(Buffer.concat([serverHello, certificate, done]), 300), 64)).toBe('not_requested');
  });

  it('an alert (TLS 1.2 refused) and a non-handshake record are reported, an incomplete flight waits', () => {
    expect(new ServerFlightReader().feed(records(Buffer.from([2, 70]), 10, 21))).toBe('alert');
    expect(new ServerFlightReader().feed(records(Buffer.from('HTTP/1.1 400'), 64, 0x48))).toBe('invalid');
    expect(new ServerFlightReader().feed(records(Buffer.concat([serverHello, certificate]), 100))).toBeUndefined();
  });

  it('a truncated CertificateRequest body is invalid, not a crash', () => {
    const broken = message(13, Buffer.from([5, 1]));
    expect(new ServerFlightReader().feed(records(broken, 100))).toBe('invalid');
  });
});
