// `netkit disk …`: the group of disk-space commands.
import type { CommandModule } from 'yargs';
import { serveCommand } from './serve.js';
import { queryCommand } from './query.js';

export const diskCommand: CommandModule = {
  // No `<command>` positional: yargs would report a missing one as "Not enough non-option arguments".
  command: 'disk',
  describe: 'Ask machines how much disk space they have (UDP, port 9991)',
  builder: (y) =>
    y
      .command(serveCommand)
      .command(queryCommand)
      .demandCommand(1, 'choose a disk command: serve or query'),
  handler: () => undefined,
};
