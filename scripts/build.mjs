// Build dist/ from src/: one ESM bundle for fast start-up, with lazily loaded chunks per command.
import { build } from 'esbuild';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url);

const result = await build({
  absWorkingDir: root.pathname,
  entryPoints: { netkit: 'src/cli/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  sourcemap: 'linked',
  legalComments: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // CommonJS dependencies bundled into ESM still call require(); give them one.
  banner: { js: "import { createRequire as __nkCreateRequire } from 'node:module'; const require = __nkCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
});

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

