// Where `netkit file fetch` keeps a target's partial download in OUT/.netkit/, for tests that look at it or plant things there.
import { existsSync, mkdirSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
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

/**
 * Resolve once `target`'s partial download in OUT/.netkit holds at least `min` bytes (fs.watch events on
 * OUT and then on the staging directory, no timers); reject if the final file appears first.
 */
export function partialReaches(out: string, target: string, min: number): Promise<void> {
  const s = staged(out, target);
  return new Promise((resolve, reject) => {
    const watchers: FSWatcher[] = [];
    const finish = (err?: Error): void => {
      for (const w of watchers.splice(0)) w.close();
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      try {
        if (statSync(s.part).size >= min) return finish();
      } catch {
        // not there yet
      }
      if (existsSync(join(out, ...target.split('/')))) return finish(new Error('the transfer finished before the test could act on it'));
      if (watchers.length === 1 && existsSync(s.dir)) {
        watchers.push(watch(s.dir, check));
        check();
      }
    };
    watchers.push(watch(out, check));
    check();
  });
}
