import type { IncomingMessage } from 'node:http';
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { TransportError } from '../errors.js';

/**
 * A decoder made once the body's first `need` bytes are in. A chunked body may turn out empty
 * only at its end: empty is no coded body (no valid gzip or br stream) and decodes to nothing.
 */
class Deferred extends Transform {
  private inner: Transform | undefined;
  private head: Buffer | undefined;

  constructor(private readonly need: number, private readonly make: (head: Buffer) => Transform) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let inner = this.inner;
    if (!inner) {
      const head = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      if (head.length < this.need) {
        this.head = head;
        callback();
        return;
      }
      this.head = undefined;
      inner = this.start(head);
      chunk = head;
    }
    inner.write(chunk, () => callback());
  }

  override _flush(callback: TransformCallback): void {
    // Fewer than `need` bytes in all: the decoder is made from them (and fails them, as it should).
    const head = this.inner ? undefined : this.head;
    if (!this.inner && !head?.length) {
      callback();
      return;
    }
    const inner = this.inner ?? this.start(head as Buffer);
    inner.once('end', () => callback());
    inner.end(head);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.inner?.destroy();
    callback(error);
  }

  private start(head: Buffer): Transform {
    const inner = this.make(head);
    inner.on('data', (data: Buffer) => this.push(data));
    inner.on('error', (error: Error) => this.destroy(error));
    this.inner = inner;
    return inner;
  }
}

/** `deflate` as servers really send it: zlib-wrapped (RFC 9110) or raw (RFC 1951), told apart by a zlib header in the first two bytes. */
function inflater(head: Buffer): Transform {
  const b0 = head[0] ?? 0;
  const b1 = head[1] ?? 0;
  const wrapped = head.length >= 2 && (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
  return wrapped ? zlib.createInflate() : zlib.createInflateRaw();
}

function hasNoBody(response: IncomingMessage, method: string): boolean {
  const status = response.statusCode ?? 0;
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200) || response.headers['content-length'] === '0';
}

function decoder(coding: string): Transform | undefined {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return new Deferred(1, () => zlib.createGunzip());
    case 'deflate':
      return new Deferred(2, inflater);
    case 'br':
      return new Deferred(1, () => zlib.createBrotliDecompress());
    default:
      return undefined;
  }
}

/**
 * Stacked codings undone at most, as curl allows. Each one is a zlib stream of its own: a backend
 * stacking 2,000 gzip layers on a 60 KB body cost about 50 s of CPU.
 */
export const MAX_CODINGS = 5;

const ignore = (): void => {};

/**
 * The body stream decoded per Content-Encoding: codings are case-insensitive and may be stacked
 * ("gzip, br" was applied gzip first, so it is undone br first), up to MAX_CODINGS. An unknown
 * coding, or more of them, is a coded, permanent error rather than raw bytes handed back as if
 * they were the body. A response without a body (to HEAD, 204, 304, Content-Length 0) is not
 * decoded: its Content-Encoding may describe the body a GET would get (RFC 9110); a chunked body
 * that ends empty decodes to nothing. Destroying the stream returned tears down every stage of a
 * stacked chain (the caller destroys it with the exchange: a stage left alone keeps inflating
 * what it holds after the Result).
 */
export function decodedBody(response: IncomingMessage, method: string): Readable {
  const header = response.headers['content-encoding'];
  if (header === undefined || hasNoBody(response, method)) return response;
  const codings = header.toLowerCase().split(',').map((c) => c.trim()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length > MAX_CODINGS) {
    throw new TransportError('SVCNODE_UNSUPPORTED_ENCODING', `the response stacks ${codings.length} Content-Encodings, more than the ${MAX_CODINGS} svcnode undoes`, {
      phase: 'response',
      hint: `the backend applied ${codings.length} codings on top of one another (curl refuses more than ${MAX_CODINGS} too): its team must send the body with one coding`,
    });
  }
  // Every coding is checked before the response is piped anywhere (stages make their zlib stream at the first byte).
  const stages: Transform[] = [];
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i] as string;
    const next = decoder(coding);
    if (!next) {
      for (const stage of stages) stage.destroy();
      throw new TransportError('SVCNODE_UNSUPPORTED_ENCODING', `the response uses Content-Encoding "${coding}", which svcnode cannot decode`, {
        phase: 'response',
        hint: 'the backend should answer with gzip, deflate, br or no coding (svcnode sends Accept-Encoding: gzip, deflate, br)',
      });
    }
    stages.push(next);
  }
  const last = stages[stages.length - 1];
  if (last === undefined) return response;
  // One coding (the common case): a plain pipe; destroying the stage and the response ends it.
  if (stages.length === 1) return response.pipe(last);
  // Stacked: pipeline() forwards a stage's error to the last stage, and destroys every stage when the last is destroyed.
  pipeline([response, ...stages], ignore);
  return last;
}
