// The --token-file option shared by every command that can use a secret, and loading it (NETKIT_TOKEN or the file) with warnings on stderr.
import type { Secret } from '../services/secret.js';

/** yargs option for --token-file. There is deliberately no --token VALUE: the process list is public. */
export const tokenFileOption = {
  type: 'string',
  describe: 'read the shared secret from this file (mode 600 or 400); without it, NETKIT_TOKEN is used if set',
  normalize: false,
} as const;

/**
 * The secret for this run, or undefined when neither --token-file nor NETKIT_TOKEN is given. Weak
 * secrets are accepted with a warning on stderr. Without a secret nothing is imported, so the
 * unauthenticated start-up path costs nothing extra.
 */
export async function loadCliSecret(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Secret | undefined> {
  if (tokenFile === undefined && (env.NETKIT_TOKEN === undefined || env.NETKIT_TOKEN === '')) return undefined;
  const { loadSecret } = await import('../services/secret.js');
  const secret = await loadSecret({ tokenFile, env });
  for (const w of secret?.warnings ?? []) process.stderr.write(`netkit: warning: ${w}\n`);
  return secret;
}
