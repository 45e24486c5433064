import type { Command } from 'commander';
import { certsCommand } from './certs.js';
import { dryRunCommand } from './dry-run.js';
import type { CliIo } from './io.js';
import { enqueueCommand, failuresCommand, workerCommand } from './queue-commands.js';

/** Every subcommand, registered in one place. */
export function registerCommands(program: Command, io: CliIo): void {
  program.addCommand(dryRunCommand(io));
  program.addCommand(workerCommand(io));
  program.addCommand(enqueueCommand(io));
  program.addCommand(failuresCommand(io));
  program.addCommand(certsCommand(io));
}
