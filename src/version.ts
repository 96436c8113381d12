// netkit's version, read from package.json so that `--version` is right under npx too.
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/**
 * package.json sits one level above src/ and dist/; the bundler may also place this module in a shared
 * chunk under dist/chunks/, two levels down, so both are tried.
 */
export function version(): string {
  if (cached === undefined) {
    cached = '0.0.0';
    for (const rel of ['../package.json', '../../package.json']) {
      try {
        const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === 'netkit' && typeof pkg.version === 'string') {
          cached = pkg.version;
          break;
        }
      } catch {
        // not there: try the next place
      }
    }
  }
  return cached;
}
