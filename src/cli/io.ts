import { Command } from 'commander';
import { InvalidInputError, SvcnodeError, UnavailableError, errorMessage } from '../errors.js';
import { EXIT } from '../failures/categories.js';

/** Text from Redis or a file made safe for a terminal: control characters (ESC, CR, …) and bidirectional overrides (which reorder what is shown) escaped. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A multi-line report made safe for a terminal: like printable(), but line breaks and tabs kept (a backend's bytes cannot clear the screen or overwrite a line). */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Output streams and environment of one command run; injected so commands are testable. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  stderr: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  env: process.env,
};

/** Write one JSON document to stdout: the only thing on stdout in `--json` mode. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** Format an error for the terminal: message, then the hint. Never includes key material. */
export function formatError(error: unknown): string {
  if (error instanceof SvcnodeError) {
    return `error [${error.code}]: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ''}`;
  }
  return `error: ${errorMessage(error)}`;
}

/**
 * Run a command action and set `process.exitCode`: the action's own code, 2 for invalid input,
 * 5 when Redis cannot be reached, 1 for anything unexpected. Nothing here calls process.exit().
 * With `json` (the command's --json), a thrown error is also printed as that one JSON document.
 */
export async function runAction(io: CliIo, action: () => Promise<number>, json?: (error: unknown) => unknown): Promise<void> {
  try {
    process.exitCode = await action();
  } catch (error) {
    io.stderr(formatError(error));
    if (json) printJson(io, json(error));
    process.exitCode = error instanceof InvalidInputError ? EXIT.invalidInput : error instanceof UnavailableError ? EXIT.network : 1;
  }
}

/** A subcommand whose usage errors exit 2 through main's CommanderError handling. */
export function subcommand(name: string): Command {
  return new Command(name).exitOverride().showHelpAfterError('(run with --help for usage)');
}
