// `netkit file …`: the group of file-transfer commands.
import type { CommandModule } from 'yargs';
import { serveCommand } from './serve.js';
import { fetchCommand } from './fetch.js';
import { listCommand } from './list.js';

export const fileCommand: CommandModule = {
  // No `<command>` positional: yargs would report a missing one as "Not enough non-option arguments".
  command: 'file',
  describe: 'Serve and fetch files, verified and resumable (TCP, port 8881)',
  builder: (y) => y.command(serveCommand).command(fetchCommand).command(listCommand).demandCommand(1, 'choose a file command: serve, fetch or list'),
  handler: () => undefined,
};
