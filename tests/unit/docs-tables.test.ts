// Every table in README.md and docs/*.md renders as one table (marked, GitHub-flavoured): no row lost to a paragraph in its middle, every row as wide as its header.
import { describe, expect, test } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lexer, type Token, type Tokens } from 'marked';

const root = fileURLToPath(new URL('../..', import.meta.url));
const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

function tables(tokens: readonly Token[]): Tokens.Table[] {
  const found: Tokens.Table[] = [];
  for (const t of tokens) {
    if (t.type === 'table') found.push(t as Tokens.Table);
    const nested = (t as { tokens?: Token[]; items?: Token[] }).tokens ?? (t as { items?: Token[] }).items;
    if (nested) found.push(...tables(nested));
  }
  return found;
}

/** Cells of a source row: split on pipes that are not escaped (`\|`). */
const cells = (row: string): number => row.trim().replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/).length;

/** Source lines that look like table rows (outside fenced code). */
function pipeLines(text: string): string[] {
  let fenced = false;
  return text.split('\n').filter((line) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    return !fenced && /^\|.*\|\s*$/.test(line);
  });
}

describe.each(docs)('%s', (doc) => {
  const text = readFileSync(join(root, doc), 'utf8');
  const found = tables(lexer(text));

  test('every table row is inside a table that renders, and every line of a table is a row', () => {
    const rendered = found.flatMap((t) => t.raw.split('\n').filter((l) => l.trim() !== ''));
    for (const line of rendered) expect({ doc, line, isRow: /^\|.*\|\s*$/.test(line) }).toEqual({ doc, line, isRow: true });
    expect(rendered.length).toBe(pipeLines(text).length);
  });

  test('every row has as many cells as its header', () => {
    for (const t of found) {
      const [header, , ...rows] = t.raw.split('\n').filter((l) => l.trim() !== '');
      for (const row of rows) expect({ doc, row, cells: cells(row) }).toEqual({ doc, row, cells: cells(header!) });
    }
  });
});
