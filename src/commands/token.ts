// `netkit token`: print a new random shared secret (32 bytes, base64url) on stdout.
import type { CommandModule } from 'yargs';

export const tokenCommand: CommandModule = {
  command: 'token',
  describe: 'Print a new random shared secret (32 bytes, base64url) for NETKIT_TOKEN or --token-file',
  builder: (y) =>
    y
      .example('$0 token > ~/.netkit-token && chmod 600 ~/.netkit-token', 'create a token file only you can read')
      .example('export NETKIT_TOKEN=$($0 token)', 'or put it in the environment'),
  handler: async () => {
    const { generateToken } = await import('../services/secret.js');
    process.stdout.write(`${generateToken()}\n`);
  },
};
