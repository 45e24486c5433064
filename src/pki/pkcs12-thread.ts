import { parentPort, workerData } from 'node:worker_threads';
import { BundleError } from '../errors.js';
import { parseWithForge, type ThreadAnswer } from './pkcs12.js';

/** A worker thread's side of preparePkcs12: one parse, one answer. */
const { bytes, passphrase, file } = workerData as { bytes: Uint8Array; passphrase: string | undefined; file: string };
let answer: ThreadAnswer;
try {
  answer = { normalised: parseWithForge(Buffer.from(bytes), passphrase, file) };
} catch (error) {
  answer = error instanceof BundleError ? { error: { code: error.code, message: error.message, hint: error.hint, file: error.file } } : { failed: true };
}
parentPort?.postMessage(answer);
