import type { FailureCategory, FailurePhase } from '../failures/categories.js';
import type { ChainEntry } from '../tls/probe.js';
import type { AuthReport } from './auth-report.js';

/** Why a call failed: a stable category, the raw code, a message and what to do. */
export interface Failure {
  phase: FailurePhase;
  category: FailureCategory;
  /** The raw Node/OpenSSL code (e.g. CERT_HAS_EXPIRED) or ours (SVCNODE_*). */
  code: string;
  message: string;
  hint: string;
}

export interface TlsReport {
  protocol: string | null;
  cipher: string | null;
  sessionReused: boolean;
  /** The call ran on a kept-alive connection: no handshake at all. */
  connectionReused: boolean;
  serverChain: ChainEntry[];
  clientCertificate: { subject: string; fingerprint256: string } | null;
}

export interface ResponseReport {
  status: number;
  headers: Record<string, string | string[]>;
  /** Parsed JSON when the content type says so, else text; null for an empty body. */
  body: unknown;
  /** The body exceeded response.maxBodyBytes and was cut. */
  truncated?: boolean;
}

/** The Result contract: dry-run output, job return value, `enqueue --wait` output. */
export interface Result {
  ok: boolean;
  nodeId: string;
  requestId?: string;
  request: { method: string; url: string };
  tls: TlsReport | null;
  response: ResponseReport | null;
  failure: Failure | null;
  timings: { connectMs: number; handshakeMs: number; totalMs: number };
  /** Attempts made for this invocation (1 when not retried). */
  attempts: number;
  /** The token step of an OAuth 2.0 node (token redacted). */
  auth?: AuthReport;
}
