// Reading the hex examples of docs/protocol.md: the code block after `<!-- hex-example: NAME -->`, hex pairs before each line's comment.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The bytes of the code block after `<!-- hex-example: NAME -->`: hex pairs before each line's comment (two spaces or more). */
export function docHex(name: string): Buffer {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8');
  const at = doc.indexOf(`<!-- hex-example: ${name} -->`);
  if (at < 0) throw new Error(`no hex example ${name}`);
  const block = /```\n([\s\S]*?)```/.exec(doc.slice(at))![1]!;
  const hex = block
    .split('\n')
    .map((l) => /^\s*((?:[0-9a-f]{2}\s+)*[0-9a-f]{2})(?:\s{2,}|$)/.exec(l)?.[1] ?? '')
    .join(' ');
  return Buffer.from(hex.replace(/\s+/g, ''), 'hex');
}
