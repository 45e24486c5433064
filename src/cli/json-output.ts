import { basename } from 'node:path';
import type { Command, CommanderError } from 'commander';
import { InvalidInputError, SvcnodeError, UnavailableError, errorMessage } from '../errors.js';
import { failureOf, inputFailure, type Failure } from '../failures/failure.js';
import { failedResult } from '../invoke/failed-result.js';
import type { Result } from '../invoke/result.js';
import { readJsonFile } from '../definitions/validator.js';

/** The `--json` document of a command that failed without a result of its own: the error alone. */
export interface ErrorDocument {
  error: { code: string; message: string; hint: string; file?: string };
}

/** `{"error": {code, message, hint}}`, the same fields `certs inspect` lists per file. */
export function errorDocument(error: unknown): ErrorDocument {
  if (error instanceof SvcnodeError) {
    return { error: { code: error.code, message: error.message, hint: error.hint ?? 'fix the input and try again', ...(error.file === undefined ? {} : { file: error.file }) } };
  }
  return { error: { code: 'SVCNODE_INTERNAL_ERROR', message: errorMessage(error), hint: 'unexpected: report it with this message' } };
}

/** The node id to report for a definition file that did not load: its "id" if readable, else the file name. */
export function nodeIdOf(file: string): string {
  try {
    const id = (readJsonFile(file, 'SVCNODE_INVALID_DEFINITION') as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && id !== '') return id;
  } catch {
    // unreadable or not JSON: the file name stands in
  }
  return basename(file).replace(/\.json$/i, '');
}

/**
 * The Failure of an error `enqueue` met on its own (bad context or URL, Redis down, no Result in
 * time), or undefined for an unexpected one, which has no category.
 */
export function commandFailure(error: unknown): Failure | undefined {
  if (error instanceof InvalidInputError) return inputFailure(error);
  if (error instanceof UnavailableError) return failureOf('connect_failed', error.code, error.message, error.hint ?? 'check that Redis is up and the URL is right', 'connect');
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'SVCNODE_TIMEOUT') {
    const hint = (error as { hint?: unknown }).hint;
    return failureOf('timeout', code, errorMessage(error), typeof hint === 'string' ? hint : 'start a worker (svcnode worker) or wait longer (--timeout-ms)', 'request');
  }
  return undefined;
}

/** The `--json` document of a Result command (dry-run, enqueue) that failed: an ok:false Result when a category fits. */
export function failedResultDocument(nodeId: string, error: unknown, requestId?: string): Result | ErrorDocument {
  const failure = commandFailure(error);
  return failure ? failedResult(nodeId, failure, requestId === undefined ? {} : { requestId }) : errorDocument(error);
}

/** The subcommand `args` name (`certs status` is two levels deep) and the arguments left for it. */
function target(program: Command, args: readonly string[]): { command: Command; rest: string[]; path: string[] } | undefined {
  let command: Command | undefined;
  let rest = [...args];
  const path: string[] = [];
  let scope = program.commands;
  while (rest[0] !== undefined) {
    const sub = scope.find((c) => c.name() === rest[0]);
    if (!sub) break;
    command = sub;
    path.push(sub.name());
    rest = rest.slice(1);
    scope = sub.commands;
  }
  return command ? { command, rest, path } : undefined;
}

/** The operands among `args`: what is neither an option nor an option's value. */
function operands(command: Command, args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return [...out, ...args.slice(i + 1)];
    if (a.startsWith('-') && a !== '-') {
      const option = command.options.find((o) => o.long === a || o.short === a);
      if (option && (option.required || option.optional)) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/**
 * The one JSON document for a command-line usage error (unknown command or option, missing
 * argument, bad number) when --json was given, or undefined without --json. A command that is
 * unknown, or has no --json of its own, still answers a caller who asked for JSON in JSON.
 */
export function usageErrorDocument(program: Command, argv: readonly string[], error: CommanderError): Result | ErrorDocument | undefined {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  if (!(end === -1 ? args : args.slice(0, end)).includes('--json')) return undefined;
  const found = target(program, args);
  const help = found ? `svcnode ${found.path.join(' ')} --help` : 'svcnode --help';
  const usage = new InvalidInputError('SVCNODE_USAGE', error.message.replace(/^error: /, ''), { hint: `run ${help} for usage` });
  if (!found?.command.options.some((o) => o.long === '--json')) return errorDocument(usage);
  const { command, rest, path } = found;
  const [first] = operands(command, rest);
  if (path[0] === 'dry-run') return failedResult(first === undefined ? '' : nodeIdOf(first), inputFailure(usage));
  if (path[0] === 'enqueue') return failedResult(first ?? '', inputFailure(usage));
  return errorDocument(usage);
}
