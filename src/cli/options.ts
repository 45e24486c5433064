import { lookup } from 'node:dns/promises';
import { InvalidArgumentError } from 'commander';
import { InvalidInputError, errorCode } from '../errors.js';

/** The longest delay Node's timers take; a longer one fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A commander parser for a whole number in [min, max]: digits only, so `1e9`, `0x10` and `''`
 * are refused as written instead of read as something else. The message names the flag.
 */
export function wholeNumber(flag: string, min: number, max: number = MAX_TIMER_MS): (value: string) => number {
  return (value) => {
    const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${flag} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** pino's level names; anything else makes pino throw at start with a message naming no variable. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Refuse an unknown SVCNODE_LOG_LEVEL before the logger is built. */
export function checkLogLevel(env: NodeJS.ProcessEnv): void {
  const level = env.SVCNODE_LOG_LEVEL;
  if (level === undefined || LOG_LEVELS.includes(level)) return;
  throw new InvalidInputError('SVCNODE_USAGE', `SVCNODE_LOG_LEVEL "${level}" is not a log level`, { hint: `set it to one of ${LOG_LEVELS.join(', ')} (default info), or unset it` });
}

/** Refuse a metrics address that does not resolve, naming the flag or variable it came from. */
export async function checkMetricsHost(host: string, from: string): Promise<void> {
  try {
    await lookup(host);
  } catch (error) {
    const code = errorCode(error) ?? 'lookup failed';
    throw new InvalidInputError('SVCNODE_USAGE', `${from} "${host}" is not an address of this machine: it does not resolve (${code})`, {
      cause: error,
      hint: `give an IP address or host name of this machine to bind /metrics and /healthz to: 127.0.0.1 (the default), 0.0.0.0 for every interface`,
    });
  }
}
