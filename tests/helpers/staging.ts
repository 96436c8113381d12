// Where `netkit file fetch` keeps a target's partial download in OUT/.netkit/, for tests that look at it or plant things there.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STAGING_DIR, stagingKey } from '../../src/services/file/fetch/staging.js';

/** OUT/.netkit/KEY.part, .json and .lock of `target` (a relative path under OUT). */
export function staged(out: string, target: string): { dir: string; part: string; info: string; lock: string } {
  const stem = join(out, STAGING_DIR, stagingKey(target));
  return { dir: join(out, STAGING_DIR), part: `${stem}.part`, info: `${stem}.json`, lock: `${stem}.lock` };
}

/** Leave a partial download of `target` in OUT/.netkit as an interrupted fetch would (mode 0700 directory, 0600 files). */
export function plantPartial(out: string, target: string, bytes: Buffer, info: { name: string; server: string; size: number; validator: string }): void {
  const s = staged(out, target);
  mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  writeFileSync(s.part, bytes, { mode: 0o600 });
  writeFileSync(s.info, JSON.stringify({ netkit: 2, target, ...info }), { mode: 0o600 });
}
