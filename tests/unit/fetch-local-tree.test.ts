// Where a target of a tree fetch lands: LocalTree.pathOf gives exactly what joining OUT and the target's segments gives, for any OUT spelling.
import { describe, expect, test } from '@jest/globals';
import path from 'node:path';
import { LocalTree } from '../../src/services/file/fetch/local-tree.js';

describe('LocalTree.pathOf', () => {
  const outs = ['.', './', 'out', 'out/', '/tmp/x', '/', '../up', 'a/./b//'];
  const targets = ['f', 'd/f', 'd/e/f', 'd/f', 'd/e/f', 'a b/ü.txt', 'x/y/', 'x/.', 'x/..', 'x/../y', './f', 'd//f'];
  test.each(outs)('OUT %s', (out) => {
    const tree = new LocalTree(out);
    // Twice each, so the cached directory paths are used too.
    for (const t of [...targets, ...targets]) expect(tree.pathOf(t)).toBe(path.join(out, ...t.split('/')));
  });
});
