// From NAMEs and listings to files to fetch: the first requests, every listed path checked, directories made, what is already there skipped or reported, and room for the rest checked before any byte moves.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { NetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import { EntryKind, LeftOutReason, leftOutText, type Entry } from '../../../protocol/file-list.js';
import type { ListFramesAnswer } from './list-read.js';
import type { Present } from './local-tree.js';
import { checkListed, lastSegment, parentOf, rootTargetOf, targetOf, type NameSpec } from './names.js';
import { SMALL_FILE } from './small-files.js';
import { stagingKey, targetSegments } from './staging.js';
import type { Item, Op, RunState } from './tree-state.js';
import { checkRoom } from './writer.js';

function newItem(spec: NameSpec, remote: string, target: string, origin: Item['origin'], e?: Entry): Item {
  return { remote, target, spec, origin, size: e?.size, mtimeMs: e?.mtimeMs, mode: e?.mode, compare: false, replace: false, resumedFrom: 0, changes: 0, ended: false };
}

/** The local target of a plain NAME (a file): NEWNAME, or NAME's last segment. */
export function plainTarget(spec: NameSpec): string {
  const target = spec.rename ?? lastSegment(spec.remote);
  targetSegments(target);
  return target;
}

/**
 * The first operations: a REQUEST for a plain NAME with nothing local in its way (the answer says if it
 * is a directory), a LIST of its parent when something local has its name (to compare first), a LIST
 * for a directory or a glob.
 */
export async function initialOps(run: RunState, specs: NameSpec[]): Promise<void> {
  // A NAME with a '..' segment (which the server refuses) comes last: it never takes the target of a valid NAME.
  const dotDot = (spec: NameSpec): boolean => spec.kind === 'plain' && spec.remote.split('/').includes('..');
  for (const spec of [...specs.filter((s) => !dotDot(s)), ...specs.filter(dotDot)]) {
    if (spec.kind !== 'plain') {
      run.queue.push({ t: 'list', spec, dir: spec.remote, recursive: spec.recursive });
      continue;
    }
    const target = plainTarget(spec);
    if (!claimable(run, spec, target)) continue;
    if ((await run.tree.present(target)).kind === 'none') {
      const item = newItem(spec, spec.remote, target, 'name');
      item.replace = run.opts.force === true;
      run.plan(item);
      run.queue.push({ t: 'get', item });
    } else {
      run.queue.push({ t: 'list', spec, dir: parentOf(spec.remote), recursive: false, probe: true });
    }
  }
}

/**
 * Whether a plain NAME may take its target: not when another NAME already lands there (the same server
 * file asked twice, which is fetched once; or another one, which fails this NAME).
 */
function claimable(run: RunState, spec: NameSpec, target: string): boolean {
  const earlier = run.planned.get(target) ?? run.probing.get(target);
  if (earlier === undefined) {
    run.probing.set(target, spec.remote);
    return true;
  }
  if (earlier !== spec.remote) {
    run.fail(undefined, spec.arg, run.tree.pathOf(target), new NetkitError('USAGE', `'${sanitize(spec.remote, 200)}' would be saved as ${run.tree.pathOf(target)}, like '${sanitize(earlier, 200)}'`, 'fetch them in two runs, into different --out directories (or name one with -o NEWNAME)'));
  }
  return false;
}

/** What to do about a file given what is at its target: fetch, skip, compare after fetching, or fail. */
export function decide(run: RunState, item: Item, present: Present): 'fetch' | 'skip' | 'compare' | NetkitError {
  const where = run.tree.pathOf(item.target);
  const force = run.opts.force === true;
  switch (present.kind) {
    case 'none':
      return 'fetch';
    case 'dir':
      return new NetkitError('EXISTS', `${where} is a directory, and the server's '${sanitize(item.remote, 200)}' is a file`, 'move it out of the way, or choose another --out');
    case 'other':
      if (force) return 'fetch';
      return new NetkitError('EXISTS', `${where} already exists (${present.what})`, 'use --force to replace it, or choose another --out');
    case 'file': {
      if (present.size !== item.size) {
        if (force) return 'fetch';
        return new NetkitError('EXISTS', `${where} already exists and differs from the server's copy (${present.size} bytes here, ${item.size} there)`, 'use --force to overwrite it');
      }
      const quick = run.preserve && !run.opts.checksum && item.mtimeMs !== undefined;
      if (quick && present.mtimeMs === item.mtimeMs) return 'skip';
      return 'compare';
    }
  }
}

/** The answer to a probe (the listing of a NAME's parent, its local copy being there). */
export async function afterProbe(run: RunState, op: Op & { t: 'list' }, answer: ListFramesAnswer | undefined): Promise<void> {
  const { spec } = op;
  const target = plainTarget(spec);
  let entry: Entry | undefined;
  for (const e of answer?.entries ?? []) {
    if (e.name === spec.remote) {
      entry = e;
      break;
    }
  }
  if (entry?.kind === EntryKind.DIRECTORY) {
    if (!run.filesOnly) {
      run.single = false;
      run.queue.push({ t: 'list', spec: { ...spec, kind: 'dir' }, dir: spec.remote, recursive: true });
      return;
    }
    entry = undefined; // the REQUEST gets the refusal
  }
  const item = newItem(spec, spec.remote, target, 'name', entry);
  item.replace = run.opts.force === true;
  run.plan(item);
  if (!entry) {
    // Not listed (an older server cannot list, the server's jail leaves it out, or there is no such
    // file): the REQUEST decides, and its RESPONSE's SIZE and MTIME are compared with the local copy.
    item.decideOnAnswer = true;
    run.queue.push({ t: 'get', item });
    return;
  }
  const verdict = decide(run, item, await run.tree.present(target));
  if (verdict instanceof NetkitError) return run.fail(item, item.remote, run.tree.pathOf(target), verdict);
  if (verdict === 'skip') return run.skip(item, 'same size and time');
  item.compare = verdict === 'compare';
  run.queue.push({ t: 'get', item });
}

/**
 * A verified listing for a directory NAME or a glob: every path checked (a refused one fails alone),
 * directories made (empty ones too), each file compared with what is there, room checked for what is
 * missing, then one REQUEST per file in listing order.
 */
export async function afterListing(run: RunState, op: Op & { t: 'list' }, answer: ListFramesAnswer): Promise<void> {
  const { spec } = op;
  run.skippedByServer += answer.skipped;
  const outstanding = run.bytesTotal - run.bytesDone;
  const top = rootTargetOf(spec);
  // Directories to make once the room is known to be there (nothing is created before that).
  const makeDirs: Array<{ rel: string; name: string; kind: 'name' | 'directory' }> = [];
  const wantDir = async (rel: string, name: string, kind: 'name' | 'directory'): Promise<void> => {
    try {
      await run.tree.checkDir(rel);
      makeDirs.push({ rel, name, kind });
    } catch (err) {
      run.fail(undefined, name, run.tree.pathOf(rel), err, kind);
    }
  };
  if (top !== undefined) await wantDir(top, spec.arg, 'name');
  // The directory a NAME names gets its own time and mode too (after everything in it, like the others).
  if (top !== undefined && top !== '' && spec.kind === 'dir' && answer.dir) run.tops.set(top, answer.dir);
  const selectedDirs = new Set<string>();
  const files: Item[] = [];
  let matched = 0;
  for (const e of answer.entries) {
    if (e.kind === EntryKind.LEFT_OUT) {
      try {
        checkListed(e.name, op.dir, targetOf(spec, e.name));
      } catch (err) {
        run.skippedByServer -= 1; // failed instead
        run.fail(undefined, e.name, e.name, err);
        continue;
      }
      leftOut(run, spec, e, selectedDirs);
      continue;
    }
    if (e.kind !== EntryKind.FILE && e.kind !== EntryKind.DIRECTORY) continue; // a kind from a newer server
    let target = '';
    try {
      target = targetOf(spec, e.name);
      checkListed(e.name, op.dir, target);
    } catch (err) {
      run.fail(undefined, e.name, target === '' ? e.name : run.tree.pathOf(target), err, e.kind === EntryKind.DIRECTORY ? 'directory' : undefined);
      continue;
    }
    if (spec.kind === 'glob') {
      const parent = parentOf(e.name);
      const selected = spec.matcher!(e.name) || selectedDirs.has(parent);
      if (!selected) continue;
      if (e.kind === EntryKind.DIRECTORY) selectedDirs.add(e.name);
    }
    matched += 1;
    const clash = fileAndDir(run, target, e.kind === EntryKind.DIRECTORY);
    if (clash !== undefined) {
      run.fail(undefined, e.name, run.tree.pathOf(target), new NetkitError('PROTOCOL', `the server listed ${clash} both as a directory and as a file; refused, nothing written for '${sanitize(e.name, 200)}'`), e.kind === EntryKind.DIRECTORY ? 'directory' : undefined);
      continue;
    }
    if (e.kind === EntryKind.DIRECTORY) {
      run.dirs.set(target, { mtimeMs: e.mtimeMs, mode: e.mode });
      await wantDir(target, e.name, 'directory');
      continue;
    }
    const earlier = run.planned.get(target);
    if (earlier !== undefined) {
      if (earlier !== e.name) run.fail(undefined, e.name, run.tree.pathOf(target), new NetkitError('USAGE', `'${sanitize(e.name, 200)}' would be saved as ${run.tree.pathOf(target)}, like '${sanitize(earlier, 200)}'`, 'fetch them in two runs, into different --out directories'));
      continue;
    }
    const item = newItem(spec, e.name, target, 'listing', e);
    run.plan(item);
    files.push(item);
  }
  if (spec.kind === 'glob' && matched === 0) {
    run.fail(undefined, spec.arg, run.tree.pathOf(''), new NetkitError('NOT_FOUND', `${run.target} has nothing matching '${sanitize(spec.arg, 200)}'`, 'globs match below their fixed part; dotfiles match only an explicit dot'), 'name');
    return;
  }
  const verdicts = await decideAll(run, files);
  let needed = 0;
  const fetch: Item[] = [];
  for (const [i, item] of files.entries()) {
    const v = verdicts[i]!;
    if (v instanceof Error) run.fail(item, item.remote, run.tree.pathOf(item.target), v);
    else if (v === 'skip') run.skip(item, 'same size and time');
    else {
      item.compare = v === 'compare';
      item.replace = run.opts.force === true;
      fetch.push(item);
      needed += Math.max(0, (item.size ?? 0) - (await leftoverBytes(run, item)));
    }
  }
  // Before any byte of these files moves, and before any directory is made: room for all of them,
  // and for what is still on its way.
  await checkRoom(run.opts.outDir, needed + outstanding, 'the files');
  // Made concurrently (each after its parent): a tree's directories cost no round trip each.
  await Promise.all(makeDirs.map((d) => run.tree.ensureDir(d.rel).catch((err: unknown) => run.fail(undefined, d.name, run.tree.pathOf(d.rel), err, d.kind))));
  const made = new Map<string, unknown>();
  for (const item of fetch) {
    const dir = parentOf(item.target);
    if (!made.has(dir)) made.set(dir, await run.tree.ensureDir(dir).then(() => undefined, (err: unknown) => err ?? new Error('cannot make the directory')));
    const failed = made.get(dir);
    if (failed !== undefined) run.fail(item, item.remote, run.tree.pathOf(item.target), failed);
    else run.queue.push({ t: 'get', item });
  }
}

/**
 * An entry the server names as left out: an unreadable file or directory (in what the NAME selects)
 * fails, and so is no longer counted as merely left out; anything else is named in the note.
 */
function leftOut(run: RunState, spec: NameSpec, e: Entry, selectedDirs: ReadonlySet<string>): void {
  if (spec.kind === 'glob' && !spec.matcher!(e.name) && !selectedDirs.has(parentOf(e.name))) {
    return;
  }
  const unreadable = e.reason === LeftOutReason.UNREADABLE_FILE || e.reason === LeftOutReason.UNREADABLE_DIRECTORY;
  if (!unreadable) {
    run.leftOut.push({ name: e.name, reason: leftOutText(e.reason) });
    return;
  }
  run.skippedByServer -= 1;
  let where = e.name;
  try {
    where = run.tree.pathOf(targetOf(spec, e.name));
  } catch {
    // A name we would not save: shown as the server sent it.
  }
  const what = e.reason === LeftOutReason.UNREADABLE_DIRECTORY ? `the directory '${sanitize(e.name, 200)}' (nothing in it was fetched)` : `'${sanitize(e.name, 200)}'`;
  run.fail(undefined, e.name, where, new NetkitError('FORBIDDEN', `${run.target} may not read ${what}: the server left it out`, 'make it readable for the user the server runs as, then fetch again'), e.reason === LeftOutReason.UNREADABLE_DIRECTORY ? 'directory' : undefined);
}

/**
 * A hostile (or changing) listing can name one path both as a file and as a directory: the target
 * itself (`d/w` twice) or a directory above it (`d/y` a file, `d/y/z` below it). Returns that path
 * (quoted, for a message) when the entry clashes with what is already planned.
 */
function fileAndDir(run: RunState, target: string, dir: boolean): string | undefined {
  if (dir ? run.planned.has(target) : run.dirs.has(target)) return run.tree.pathOf(target);
  for (let p = parentOf(target); p !== ''; p = parentOf(p)) if (run.planned.has(p)) return run.tree.pathOf(p);
  return undefined;
}

/** Each file's verdict: its directory checked, not made (a failure fails its files), what is there looked up in batches. */
async function decideAll(run: RunState, files: Item[]): Promise<Array<'fetch' | 'skip' | 'compare' | Error>> {
  const out: Array<'fetch' | 'skip' | 'compare' | Error> = new Array(files.length);
  const dirs = new Map<string, Error | undefined>();
  for (const item of files) {
    const dir = parentOf(item.target);
    if (!dirs.has(dir)) dirs.set(dir, await run.tree.checkDir(dir).then(() => undefined, (err: unknown) => (err instanceof Error ? err : new Error(String(err)))));
  }
  // The files to look up: those whose directory checked out (the others fail with it).
  const look: string[] = [];
  files.forEach((item, i) => {
    const failed = dirs.get(parentOf(item.target));
    if (failed) out[i] = failed;
    else look.push(item.target);
  });
  let present: Present[];
  try {
    present = await run.tree.presentMany(look, (paths) => run.small.thread.lstat(paths));
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return files.map((_, i) => out[i] ?? e);
  }
  let j = 0;
  files.forEach((item, i) => {
    if (out[i] === undefined) out[i] = decide(run, item, present[j++]!);
  });
  return out;
}

/** Bytes an earlier run left in staging for this file (0 when none); such a file resumes through a partial file. */
async function leftoverBytes(run: RunState, item: Item): Promise<number> {
  if (!run.partials) return 0;
  const key = stagingKey(item.target);
  if (!run.stagingNames.has(`${key}.part`)) return 0;
  const st = await fsp.lstat(path.join(run.staging.dir, `${key}.part`)).catch(() => undefined);
  return st?.isFile() ? st.size : 0;
}

/** Whether a listed file goes through a partial file in staging: large, or with a partial download to resume. */
export function needsStaging(run: RunState, item: Item): boolean {
  return item.origin === 'name' || (item.size ?? 0) > SMALL_FILE || (run.partials && run.stagingNames.has(`${stagingKey(item.target)}.part`));
}
