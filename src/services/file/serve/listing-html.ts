// The directory page: self-contained HTML (inline style allowed by hash, no script, no external asset), readable on a phone, every name HTML-escaped and URL-encoded.
import { createHash } from 'node:crypto';
import { encodePath } from '../../../protocol/http-target.js';
import type { ListEntry } from './listing.js';

const STYLE = `
:root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
body{margin:0 auto;max-width:60rem;padding:1rem;line-height:1.4}
h1{font-size:1.2rem;word-break:break-all;margin:0 0 1rem}
table{width:100%;border-collapse:collapse}
th,td{padding:.45rem .5rem;border-bottom:1px solid #8884;text-align:left;vertical-align:top}
td.n{word-break:break-all}
td.s,th.s{text-align:right;white-space:nowrap}
td.m{white-space:nowrap}
a{text-decoration:none}
a.d{margin-left:.5rem;font-size:.9em;opacity:.75}
footer{margin-top:1rem;font-size:.85rem;opacity:.75}
@media (max-width:40rem){th.m,td.m{display:none}body{padding:.5rem}td,th{padding:.6rem .3rem}}
`.trim();

/**
 * The page's Content-Security-Policy: nothing may load or run except the one inline style, named by
 * its hash. A name that slipped past escaping still could not execute.
 */
export const LISTING_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe inside an element or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Sizes for people: 1023 B, 1.5 KiB, 12 MiB (binary units, at most three significant digits). */
export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${v >= 100 ? Math.round(v) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** `2024-05-01 12:00` (UTC), with the exact instant in the <time> element. */
function when(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, 16)}</time>`;
}

/** The start of the page for root-relative `dir` ('' is the root): head, breadcrumb, table head, parent link. */
export function directoryPageStart(dir: string): string {
  const segments = dir === '' ? [] : dir.split('/');
  const title = `/${segments.map((s) => `${s}/`).join('')}`;
  let crumbs = '<a href="/">/</a>';
  for (let i = 0; i < segments.length; i++) {
    crumbs += `<a href="/${encodePath(segments.slice(0, i + 1))}/">${escapeHtml(segments[i]!)}</a>/`;
  }
  const parent = segments.length > 0 ? '<tr><td class="n"><a href="../">../</a></td><td class="s"></td><td class="m"></td></tr>\n' : '';
  return (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<title>Index of ${escapeHtml(title)}</title>\n<style>${STYLE}</style>\n</head>\n<body>\n` +
    `<h1>Index of ${crumbs}</h1>\n<table>\n<thead><tr><th>Name</th><th class="s">Size</th><th class="m">Modified (UTC)</th></tr></thead>\n<tbody>\n${parent}`
  );
}

/**
 * One row. The link is relative to the directory's page: `./` and the last segment, percent-encoded,
 * so a name such as `?x`, `#x`, `a:b` or `%2e%2e` stays a name in this directory. A file also gets a
 * download link (the `download` attribute saves it rather than showing it).
 */
export function directoryRow(e: ListEntry): string {
  const base = e.path.slice(e.path.lastIndexOf('/') + 1);
  const label = escapeHtml(base);
  if (e.type === 'dir') {
    return `<tr><td class="n"><a href="./${encodePath([base])}/">${label}/</a></td><td class="s">-</td><td class="m">${when(e.mtimeMs)}</td></tr>\n`;
  }
  const href = `./${encodePath([base])}`;
  return (
    `<tr><td class="n"><a href="${href}">${label}</a><a class="d" href="${href}" download="${label}" title="download ${label}">&#x2B07;</a></td>` +
    `<td class="s" title="${e.size} bytes">${humanSize(e.size)}</td><td class="m">${when(e.mtimeMs)}</td></tr>\n`
  );
}

/** The end of the page: how many entries, and how many the server left out. */
export function directoryPageEnd(count: number, skipped: number): string {
  const left = skipped > 0 ? `; ${skipped} left out (links leaving the directory, special files, unreadable or unservable names)` : '';
  return `</tbody>\n</table>\n<footer>${count} ${count === 1 ? 'entry' : 'entries'}${left}. Served by netkit.</footer>\n</body>\n</html>\n`;
}
