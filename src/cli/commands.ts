import type { Command } from 'commander';
import type { CliIo } from './io.js';

/** Every subcommand, registered in one place. */
export function registerCommands(program: Command, io: CliIo): void {
  void io;
  void program;
}
