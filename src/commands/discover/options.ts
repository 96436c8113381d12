// The --discover and --discover-timeout options shared by `disk query` and `file fetch`.
import { parseDuration } from '../../cli/args.js';

export function discoverOption(kind: 'disk' | 'file') {
  return {
    type: 'boolean',
    default: false,
    describe:
      kind === 'disk'
        ? 'also ask every disk server that announces itself on this network (mDNS/DNS-SD)'
        : 'fetch from the one file server that announces itself on this network; with several, list them and stop',
  } as const;
}

export const discoverTimeoutOption = {
  type: 'string',
  default: '2s',
  describe: 'with --discover, listen for announcements this long',
  coerce: (v: unknown) => parseDuration(v, '--discover-timeout', 600_000),
} as const;
