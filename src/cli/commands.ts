import type { Command } from 'commander';
import type { CliIo } from './io.js';

type Factory = (io: CliIo) => Command;

/** Every subcommand, loaded on demand: a command pays only for the modules it uses. */
const COMMANDS: Record<string, () => Promise<Factory>> = {
  'dry-run': async () => (await import('./dry-run.js')).dryRunCommand,
  worker: async () => (await import('./queue-commands.js')).workerCommand,
  enqueue: async () => (await import('./queue-commands.js')).enqueueCommand,
  failures: async () => (await import('./queue-commands.js')).failuresCommand,
  certs: async () => (await import('./certs.js')).certsCommand,
};

/**
 * Register the subcommand named in `argv` (or all of them, for the top-level help and for
 * unknown names, so commander can list them).
 */
export async function registerCommands(program: Command, io: CliIo, argv: readonly string[]): Promise<void> {
  const name = argv[2];
  const names = name !== undefined && Object.hasOwn(COMMANDS, name) ? [name] : Object.keys(COMMANDS);
  for (const n of names) {
    const load = COMMANDS[n] as () => Promise<Factory>;
    program.addCommand((await load())(io));
  }
}
