// A second local user for tests of a shared output directory: run a shell script as uid/gid 65534 (nobody) with setpriv.
import { spawnSync } from 'node:child_process';

export const NOBODY = 65534;

/** Why the tests that need another user cannot run here, or undefined when they can (root with setpriv). */
export function otherUserUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root, to act as a second user (uid 65534)';
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'needs setpriv (util-linux)';
  return undefined;
}

/** Run `script` with sh as uid/gid 65534 and no supplementary groups; its status and output. */
export function asNobody(script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'sh', '-c', script], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
