import { pino, type Logger } from 'pino';

/** Paths pino must never print: keys, passphrases, PKCS#12 bytes, credentials and bodies. */
export const REDACT_PATHS = [
  'key', 'keyPem', 'passphrase', 'pfx', 'pkcs12', 'password', 'authorization', 'body', 'context',
  '*.key', '*.keyPem', '*.passphrase', '*.pfx', '*.pkcs12', '*.password', '*.authorization', '*.body', '*.context',
  'headers.authorization', '*.headers.authorization', '*.headers["proxy-authorization"]', '*.headers.cookie',
];

/** The process logger: JSON lines on stderr (stdout stays free for command output). */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'svcnode',
      level: options.level ?? process.env.SVCNODE_LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
