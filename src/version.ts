// netkit's version, read from package.json so that `--version` is right under npx too.
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** package.json sits one level above both src/ and dist/, so one relative URL serves both. */
export function version(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      cached = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      cached = '0.0.0';
    }
  }
  return cached;
}
