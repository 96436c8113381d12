// Build dist/ from src/: one ESM bundle for fast start-up, with lazily loaded chunks per command.
import { build } from 'esbuild';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url);

// string-width 8 (yargs' help layout) compiles /^\p{RGI_Emoji}$/v when imported: ~10 ms on every start.
// It is only ever used with .test(), so compile it on first use instead.
const RGI_EMOJI = 'const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;';
const lazyEmojiRegex = {
  name: 'lazy-rgi-emoji-regex',
  setup(b) {
    b.onLoad({ filter: /string-width[\\/]index\.js$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      if (!source.includes(RGI_EMOJI)) return undefined;
      const lazy = 'let rgiEmojiRegexCompiled; const rgiEmojiRegex = { test: (s) => (rgiEmojiRegexCompiled ??= /^\\p{RGI_Emoji}$/v).test(s) };';
      return { contents: source.replace(RGI_EMOJI, () => lazy), loader: 'js' };
    });
  },
};

// yargs renders the whole help text after every command handler starts (cacheHelpMessage), in case the
// handler later asks for help: ~10 ms on every run. netkit's handlers never show help, and usage errors are
// reported through .fail() without it, so the eager rendering is dropped.
const CACHE_HELP = 'cachedHelpMessage = this.help();';
const noEagerHelp = {
  name: 'no-eager-help-cache',
  setup(b) {
    b.onLoad({ filter: /yargs[\\/]build[\\/]lib[\\/]usage\.js$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      if (!source.includes(CACHE_HELP)) throw new Error(`yargs changed: '${CACHE_HELP}' not found in ${path}; review scripts/build.mjs`);
      return { contents: source.replace(CACHE_HELP, () => 'cachedHelpMessage = undefined;'), loader: 'js' };
    });
  },
};

/**
 * Bundle `entryPoints` into `outdir` the way netkit ships: ESM, minified, lazily loaded chunks, and the
 * start-up fixes above. Exported so the start-up benchmark can bundle a yargs-only program the same way.
 */
export async function bundle({ entryPoints, outdir, absWorkingDir = root.pathname }) {
  return build({
    absWorkingDir,
    entryPoints,
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    chunkNames: 'chunks/[name]-[hash]',
    // CommonJS dependencies bundled into ESM still call require(); give them one.
    banner: { js: "import { createRequire as __nkCreateRequire } from 'node:module'; const require = __nkCreateRequire(import.meta.url);" },
    // See segmenter-shim.js: keeps ~35 ms of ICU start-up off every command.
    inject: [fileURLToPath(new URL('segmenter-shim.js', import.meta.url))],
    plugins: [lazyEmojiRegex, noEagerHelp],
    define: { 'Intl.Segmenter': 'LazySegmenter' },
    logLevel: 'warning',
    metafile: true,
  });
}

/** Build dist/ and remove stale chunks from earlier builds. */
async function buildNetkit() {
  const result = await bundle({ entryPoints: { netkit: 'src/cli/main.ts' }, outdir: 'dist' });
  // Remove stale chunks from earlier builds. dist/ is never deleted wholesale, so a netkit process
  // started during a rebuild still finds its files.
  const keep = new Set(Object.keys(result.metafile.outputs).map((f) => join(root.pathname, f)));
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (!keep.has(p) && !name.endsWith('.LEGAL.txt')) rmSync(p);
    }
  };
  walk(join(root.pathname, 'dist'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildNetkit();
