// Memory for small files read ahead of their turn: a budget for the whole server and a share per session, so pipelined requests cost a bounded window whatever clients send.

export interface PrefetchBudgetOptions {
  /** Bytes of read-ahead for the whole server (default 32 MiB). */
  total?: number;
  /** Bytes of read-ahead for one session (default 2 MiB). */
  perSession?: number;
}

/**
 * A session reserves the most a request may cost (the small-file limit) before it prepares it,
 * keeps what the file really took once it is read, and gives it back when the answer is written. A
 * session with nothing reserved may always take one request, so every session makes progress; past
 * its share, or past the server's total, it reads no further ahead until answers go out.
 */
export class PrefetchBudget {
  readonly total: number;
  readonly perSession: number;
  private used = 0;

  constructor(opts: PrefetchBudgetOptions = {}) {
    this.total = opts.total ?? 32 * 1024 * 1024;
    this.perSession = opts.perSession ?? 2 * 1024 * 1024;
    if (!(this.total > 0) || !(this.perSession > 0)) throw new RangeError('invalid PrefetchBudget options');
  }

  /** Reserve `n` bytes for a session that holds `mine` already. */
  tryTake(mine: number, n: number): boolean {
    if (mine > 0 && (mine + n > this.perSession || this.used + n > this.total)) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }

  /** Bytes reserved now, over every session (for tests). */
  get inUse(): number {
    return this.used;
  }
}
