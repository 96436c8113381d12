// `netkit disk …`: the group of disk-space commands.
import type { CommandModule } from 'yargs';

export const diskCommand: CommandModule = {
  command: 'disk <command>',
  describe: 'Ask machines how much disk space they have (UDP, port 9991)',
  builder: (y) => y.demandCommand(1, 'choose a disk command: serve or query'),
  handler: () => undefined,
};
