// Connection accounting from accept: slots in total and per source, fair eviction of connections still in their header, bounded busy answers, and the header deadline.
import { performance } from 'node:perf_hooks';
import type { StreamSocket } from '../../../transport/tcp.js';
import { ConnectionEnd } from './types.js';

/** header: from accept to a complete request; transfer: answered OK, sending; closing: answered, lingering. */
export type Phase = 'header' | 'transfer' | 'closing';

/** The longest a connection over the limits may take to send its first byte and hear BUSY. */
export const BUSY_ANSWER_MS = 2_000;

/**
 * One accepted connection, counted from accept until its handler is done. A `slot` connection holds
 * one of --max-connections; a `busy` one is over the limits and only waits for its first bytes to be
 * told BUSY in its own protocol.
 */
export class Conn {
  phase: Phase = 'header';
  /** What the session reads and writes: the accepted socket, or the TLS socket after a handshake. */
  socket: StreamSocket;
  readonly started = performance.now();
  private deadline: NodeJS.Timeout | undefined;
  private released = false;

  constructor(
    /** The accepted TCP socket. */
    readonly raw: StreamSocket,
    /** sourceKey() of the peer: what the limits count by. */
    readonly source: string,
    /** host:port of the peer, for the log. */
    readonly peer: string,
    readonly kind: 'slot' | 'busy',
    private readonly table: ConnectionTable,
    private readonly deadlineMs: number,
  ) {
    this.socket = raw;
    // cut() destroys with a reason, which the socket emits as 'error': the session reads it from `errored`.
    raw.on('error', () => undefined);
    this.arm();
  }

  /** The whole request has arrived: the header deadline no longer applies. */
  requestComplete(): void {
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  /**
   * A session that serves several requests on one connection waits for the next: back to the header
   * phase (evictable again) under a fresh header deadline.
   */
  expectRequest(): void {
    this.enter('header');
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.cut(new ConnectionEnd('timeout', `no complete request within ${this.deadlineMs / 1000}s`)), this.deadlineMs);
    this.deadline.unref();
  }

  /**
   * Set by a session while it waits between requests with every answer sent: a server that shuts down
   * calls it instead of cutting the connection, and the session ends gracefully (its client has all it
   * asked for). Returns false when it cannot (then the connection is cut).
   */
  endBetweenRequests: (() => boolean) | undefined;

  /** Move to another phase. A connection in its transfer is never evicted for a newcomer. */
  enter(phase: Phase): void {
    if (this.phase === phase) return;
    this.phase = phase;
    if (!this.released) this.table.phaseChanged(this);
  }

  /** End the connection now; `reason`, if given, is what the log reports (deadline, eviction, shutdown). */
  cut(reason?: Error): void {
    this.socket.destroy(reason);
    if (this.raw !== this.socket) this.raw.destroy();
  }

  /** The handler is done with it: give the slot (or the busy answer) back. Calling it twice is harmless. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.deadline);
    this.table.released(this);
  }

  get isReleased(): boolean {
    return this.released;
  }
}

export interface TableOptions {
  maxTotal: number;
  maxPerSource: number;
  headerTimeoutMs: number;
}

export type Admission =
  | { kind: 'slot'; conn: Conn }
  | { kind: 'busy'; conn: Conn; reason: 'total' | 'per-source' }
  /** Past even the busy answers: close at once. */
  | { kind: 'drop' };

/**
 * The table. A newcomer gets a slot when its source is under --max-per-source and the server is under
 * --max-connections. When the server is full, the newcomer takes the slot of an evictable connection
 * (one still in its header, or lingering after its answer), from the source that holds the most
 * evictable ones, its oldest first, provided that source holds more than the newcomer's source does
 * (or is the newcomer's own). So a few hosts holding idle connections cannot lock anyone out: a new
 * address always finds a slot unless every slot is transferring, and a flooder only ever displaces
 * itself once the others are down to its share. Connections in their transfer are never evicted.
 * Otherwise the newcomer is over the limits: it is told BUSY if fewer than max(16, maxTotal) busy
 * answers are pending, at most a quarter of them (at least 4) from its source; else closed at once.
 * Every operation is O(1): sources are kept in buckets by their count of evictable connections.
 */
export class ConnectionTable {
  readonly maxTotal: number;
  readonly maxPerSource: number;
  readonly busyCap: number;
  readonly busyPerSource: number;
  private readonly headerTimeoutMs: number;
  private readonly slots = new Set<Conn>();
  private readonly perSource = new Map<string, number>();
  /** Per source, its evictable connections in the order they became evictable. */
  private readonly evictable = new Map<string, Set<Conn>>();
  /** Sources by their number of evictable connections. */
  private readonly buckets = new Map<number, Set<string>>();
  private maxEvictable = 0;
  private busyOpen = 0;
  private readonly busyBySource = new Map<string, number>();

  constructor(opts: TableOptions) {
    this.maxTotal = opts.maxTotal;
    this.maxPerSource = opts.maxPerSource;
    this.headerTimeoutMs = opts.headerTimeoutMs;
    if (!(this.maxTotal >= 1) || !(this.maxPerSource >= 1)) throw new RangeError('invalid connection limits');
    this.busyCap = Math.max(16, this.maxTotal);
    this.busyPerSource = Math.max(4, Math.floor(this.busyCap / 4));
  }

  /** Count a connection just accepted from `source`. */
  admit(raw: StreamSocket, source: string, peer: string): Admission {
    const mine = this.perSource.get(source) ?? 0;
    let reason: 'total' | 'per-source' | undefined;
    if (mine >= this.maxPerSource) reason = 'per-source';
    else if (this.slots.size >= this.maxTotal && !this.evictFor(source, mine)) reason = 'total';
    if (reason === undefined) {
      const conn = new Conn(raw, source, peer, 'slot', this, this.headerTimeoutMs);
      this.slots.add(conn);
      // Not `mine + 1`: the eviction may have taken one of this source's own connections.
      this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
      this.addEvictable(conn);
      return { kind: 'slot', conn };
    }
    const busyMine = this.busyBySource.get(source) ?? 0;
    if (this.busyOpen >= this.busyCap || busyMine >= this.busyPerSource) return { kind: 'drop' };
    this.busyOpen += 1;
    this.busyBySource.set(source, busyMine + 1);
    return { kind: 'busy', conn: new Conn(raw, source, peer, 'busy', this, Math.min(this.headerTimeoutMs, BUSY_ANSWER_MS)), reason };
  }

  /** Connections holding a slot. */
  get size(): number {
    return this.slots.size;
  }

  /** Slots held by one source (for tests and messages). */
  count(source: string): number {
    return this.perSource.get(source) ?? 0;
  }

  /** The connections holding a slot, for shutdown. */
  conns(): IterableIterator<Conn> {
    return this.slots.values();
  }

  /** Called by Conn.enter. */
  phaseChanged(conn: Conn): void {
    if (conn.kind !== 'slot') return;
    if (conn.phase === 'transfer') this.removeEvictable(conn);
    else this.addEvictable(conn);
  }

  /** Called by Conn.release. */
  released(conn: Conn): void {
    if (conn.kind === 'busy') {
      this.busyOpen -= 1;
      const left = (this.busyBySource.get(conn.source) ?? 1) - 1;
      if (left > 0) this.busyBySource.set(conn.source, left);
      else this.busyBySource.delete(conn.source);
      return;
    }
    this.slots.delete(conn);
    this.removeEvictable(conn);
    const left = (this.perSource.get(conn.source) ?? 1) - 1;
    if (left > 0) this.perSource.set(conn.source, left);
    else this.perSource.delete(conn.source);
  }

  /** Free a slot for a newcomer from `source` (which holds `mine`) by evicting, if fairness allows. */
  private evictFor(source: string, mine: number): boolean {
    if (this.maxEvictable === 0) return false;
    const own = this.evictable.get(source);
    let victimSource: string;
    if (own !== undefined && own.size === this.maxEvictable) victimSource = source;
    else if (this.maxEvictable > mine) victimSource = this.buckets.get(this.maxEvictable)!.values().next().value!;
    else return false;
    const victim = this.evictable.get(victimSource)!.values().next().value!;
    // Its slot is free from now on; its handler finishes (and logs) on a later turn.
    victim.release();
    victim.cut(new ConnectionEnd('evicted', `the server was full (${this.maxTotal} connections) and this one had not completed its request; a newcomer took its slot`));
    return true;
  }

  private addEvictable(conn: Conn): void {
    let set = this.evictable.get(conn.source);
    if (set?.has(conn)) return;
    if (!set) {
      set = new Set();
      this.evictable.set(conn.source, set);
    }
    set.add(conn);
    this.moveBucket(conn.source, set.size - 1, set.size);
  }

  private removeEvictable(conn: Conn): void {
    const set = this.evictable.get(conn.source);
    if (!set?.delete(conn)) return;
    this.moveBucket(conn.source, set.size + 1, set.size);
    if (set.size === 0) this.evictable.delete(conn.source);
  }

  private moveBucket(source: string, from: number, to: number): void {
    if (from > 0) {
      const b = this.buckets.get(from)!;
      b.delete(source);
      if (b.size === 0) this.buckets.delete(from);
    }
    if (to > 0) {
      let b = this.buckets.get(to);
      if (!b) {
        b = new Set();
        this.buckets.set(to, b);
      }
      b.add(source);
    }
    if (to > this.maxEvictable) this.maxEvictable = to;
    while (this.maxEvictable > 0 && !this.buckets.has(this.maxEvictable)) this.maxEvictable -= 1;
  }
}
