// `netkit file …`: the group of file-transfer commands.
import type { CommandModule } from 'yargs';

export const fileCommand: CommandModule = {
  command: 'file <command>',
  describe: 'Serve and fetch files, verified and resumable (TCP, port 8881)',
  builder: (y) => y.demandCommand(1, 'choose a file command: serve or fetch'),
  handler: () => undefined,
};
