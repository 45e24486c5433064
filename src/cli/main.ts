#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { PACKAGE_ROOT } from '../package-root.js';
import { EXIT } from '../failures/categories.js';
import { processIo } from './io.js';
import { registerCommands } from './commands.js';

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
    // --help and --version exit 0; usage errors are invalid input (exit 2).
    process.exitCode = error.exitCode === 0 ? 0 : EXIT.invalidInput;
  } else {
    throw error;
  }
}
