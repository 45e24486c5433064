#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { PACKAGE_ROOT } from '../package-root.js';
import { EXIT } from '../failures/categories.js';
import { printJson, processIo } from './io.js';
import { usageErrorDocument } from './json-output.js';
import { registerCommands } from './commands.js';

// `svcnode failures | head`: a reader that stops early ends the output quietly, as Unix tools do,
// not with an 'Unhandled error event' stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}

const program = new Command('svcnode')
  .description('Outbound two-way SSL (mutual TLS) service-node runtime')
  .version((JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

await registerCommands(program, processIo, process.argv);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; usage errors are invalid input (exit 2), under --json also a document.
    process.exitCode = error.exitCode === 0 ? 0 : EXIT.invalidInput;
    const document = error.exitCode === 0 ? undefined : usageErrorDocument(program, process.argv, error);
    if (document !== undefined) printJson(processIo, document);
  } else {
    throw error;
  }
}
