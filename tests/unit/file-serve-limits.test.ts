// The file server's connection table (slots, fair eviction of idle connections, busy answers) against a model, and the budget for hashing resumed prefixes.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { ConnectionTable, type Conn } from '../../src/services/file/serve/connections.js';
import { PrefixHashBudget } from '../../src/services/file/serve/prefix-budget.js';

const RUNS = { numRuns: 150, interruptAfterTimeLimit: 5_000 };

/** A real, unconnected socket: the table only ever destroys it. */
const socket = (): net.Socket => new net.Socket();

function table(maxTotal: number, maxPerSource: number): ConnectionTable {
  return new ConnectionTable({ maxTotal, maxPerSource, headerTimeoutMs: 60_000 });
}

function slot(t: ConnectionTable, source: string): Conn {
  const a = t.admit(socket(), source, source);
  if (a.kind !== 'slot') throw new Error(`expected a slot for ${source}, got ${a.kind}`);
  return a.conn;
}

describe('ConnectionTable', () => {
  test('per-source and total limits; release is idempotent; busy answers are bounded in all and per source', () => {
    const t = table(3, 2);
    const a1 = slot(t, 'a');
    slot(t, 'a');
    const over = t.admit(socket(), 'a', 'a');
    expect(over.kind === 'busy' && over.reason).toBe('per-source');
    const b1 = slot(t, 'b');
    a1.enter('transfer');
    b1.enter('transfer');
    // Full; c holds nothing, but a's only evictable connection is one, and c would take it: fair.
    const c1 = t.admit(socket(), 'c', 'c');
    expect(c1.kind).toBe('slot');
    expect(t.count('a')).toBe(1);
    // Now a has one transfer, b one transfer, c one in its header: a newcomer from d takes c's.
    expect(t.admit(socket(), 'd', 'd').kind).toBe('slot');
    expect(t.count('c')).toBe(0);
    // d's is evictable, but only by a source that holds fewer than d does: e holds none.
    expect(t.admit(socket(), 'e', 'e').kind).toBe('slot');
    a1.release();
    a1.release();
    expect(t.size).toBe(2);
    // Busy answers: max(16, 3) in all, a quarter (at least 4) per source.
    expect(t.busyCap).toBe(16);
    expect(t.busyPerSource).toBe(4);
  });

  test('a transferring connection is never evicted; a full server of transfers answers busy, then drops', () => {
    const t = table(2, 2);
    slot(t, 'a').enter('transfer');
    slot(t, 'b').enter('transfer');
    const kinds = Array.from({ length: 20 }, () => t.admit(socket(), 'c', 'c').kind);
    expect(kinds.filter((k) => k === 'busy')).toHaveLength(4);
    expect(kinds.slice(4).every((k) => k === 'drop')).toBe(true);
    expect(t.size).toBe(2);
  });

  test('four flooding sources and a newcomer: the newcomer always gets a slot, the flooders only displace themselves', () => {
    const t = table(64, 32);
    const victims: Conn[] = [];
    for (let i = 0; i < 400; i++) {
      const a = t.admit(socket(), `f${i % 4}`, 'flood');
      if (a.kind === 'slot') victims.push(a.conn);
    }
    expect(t.size).toBe(64);
    for (let i = 0; i < 4; i++) expect(t.count(`f${i}`)).toBe(16);
    const mine = slot(t, 'newcomer');
    for (let i = 0; i < 400; i++) t.admit(socket(), `f${i % 4}`, 'flood');
    expect(mine.isReleased).toBe(false);
    expect(t.count('newcomer')).toBe(1);
    expect(mine.socket.destroyed).toBe(false);
  });

  test('a connection that goes back to waiting for a request (expectRequest) is evictable again, under a fresh header deadline', async () => {
    const t = new ConnectionTable({ maxTotal: 1, maxPerSource: 1, headerTimeoutMs: 50 });
    const a = slot(t, 'a');
    a.requestComplete();
    a.enter('transfer');
    expect(t.admit(socket(), 'b', 'b').kind).toBe('busy');
    a.expectRequest();
    expect(a.phase).toBe('header');
    const b = t.admit(socket(), 'b', 'b');
    expect(b.kind).toBe('slot');
    expect(a.isReleased).toBe(true);
    if (b.kind !== 'slot') throw new Error('unreachable');
    b.conn.expectRequest();
    await new Promise((resolve) => b.conn.socket.once('close', resolve));
    expect((b.conn.socket as { errored?: Error }).errored?.message).toBe('no complete request within 0.05s');
  });

  test('model check: limits hold, a transfer is never evicted, and a newcomer is refused only when fairness says so', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('open' as const), src: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('transfer' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('close' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 200 }), (total, per, ops) => {
        const t = table(total, per);
        let open: Conn[] = [];
        for (const o of ops) {
          open = open.filter((c) => !c.isReleased); // evicted ones left the table
          if (o.kind === 'open') {
            const src = `s${o.src}`;
            const mine = open.filter((c) => c.source === src).length;
            const evictable = (s: string): number => open.filter((c) => c.source === s && c.phase !== 'transfer').length;
            const most = Math.max(0, ...open.map((c) => evictable(c.source)));
            const transfers = open.filter((c) => c.phase === 'transfer');
            const a = t.admit(socket(), src, src);
            const fair = open.length < total || (most > 0 && (evictable(src) === most || most > mine));
            expect(a.kind === 'slot').toBe(mine < per && fair);
            if (a.kind === 'slot') open.push(a.conn);
            for (const c of transfers) expect(c.isReleased).toBe(false);
          } else if (open.length > 0) {
            const c = open[o.pick % open.length]!;
            if (o.kind === 'transfer') c.enter('transfer');
            else {
              c.release();
              c.release(); // a second release must not free someone else's slot
            }
          }
          open = open.filter((c) => !c.isReleased);
          expect(t.size).toBe(open.length);
          expect(t.size).toBeLessThanOrEqual(total);
          for (let s = 0; s <= 5; s++) {
            expect(t.count(`s${s}`)).toBe(open.filter((c) => c.source === `s${s}`).length);
            expect(t.count(`s${s}`)).toBeLessThanOrEqual(per);
          }
        }
      }),
      RUNS,
    );
  });
});

describe('PrefixHashBudget', () => {
  function clock(): { now: () => number; advance: (ms: number) => void } {
    let t = 1_000;
    return { now: () => t, advance: (ms) => (t += ms) };
  }

  test('one prefix at a time per source; a large one is allowed on credit and then paid back at the rate', () => {
    const c = clock();
    const b = new PrefixHashBudget({ bytesPerSec: 1_000_000, burstBytes: 10_000_000, clock: c.now });
    const first = b.tryStart('a', 50_000_000);
    expect(first.ok).toBe(true);
    const second = b.tryStart('a', 1);
    expect(second).toMatchObject({ ok: false, why: expect.stringMatching(/already hashing/) });
    expect(b.tryStart('b', 1).ok).toBe(true); // other sources are not affected
    if (first.ok) first.release();
    // 10 MB of credit, 50 MB charged: 40 MB of debt, paid back at 1 MB/s.
    const broke = b.tryStart('a', 1);
    expect(broke.ok).toBe(false);
    if (!broke.ok) expect(broke.retryAfterMs).toBe(40_001);
    c.advance(40_001);
    expect(b.tryStart('a', 1).ok).toBe(true);
  });

  test('small resumes in a burst pass on the credit; a full table refuses new sources until one is paid back', () => {
    const c = clock();
    const b = new PrefixHashBudget({ bytesPerSec: 1_000, burstBytes: 100, maxSources: 2, clock: c.now });
    for (let i = 0; i < 4; i++) {
      const r = b.tryStart('a', 25);
      expect(r.ok).toBe(true);
      if (r.ok) r.release();
    }
    expect(b.tryStart('a', 25).ok).toBe(false);
    const r = b.tryStart('b', 1_000);
    if (r.ok) r.release();
    expect(b.tryStart('c', 1)).toMatchObject({ ok: false, why: expect.stringMatching(/too many addresses/) });
    c.advance(1_000); // a and b are paid back: forgotten
    expect(b.tryStart('c', 1).ok).toBe(true);
    expect(b.size).toBe(1);
  });
});
