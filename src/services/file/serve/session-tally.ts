// The log entry of a session: one line for the whole connection, counting its requests, bytes and refusals.
import type { Answered } from './answer.js';
import type { Outcome, TransferLog } from './types.js';

/** Tallies a session's answers into its connection's log entry. */
export class SessionTally {
  requests = 0;
  /** Body bytes written over the whole session. */
  bytes = 0;
  private ok = 0;
  private readonly counts = new Map<Outcome, number>();
  private firstRefusal: string | undefined;
  private readonly notes: string[] = [];
  private ending: Answered | undefined;

  constructor(private readonly entry: TransferLog) {
    entry.requests = 0;
  }

  /** One request answered; `ends` when its refusal ended the session (its outcome is the session's). */
  add(name: string | undefined, a: Answered, ends = false): void {
    this.requests += 1;
    this.bytes += a.bytes;
    if (a.outcome === 'ok') this.ok += 1;
    else {
      this.counts.set(a.outcome, (this.counts.get(a.outcome) ?? 0) + 1);
      // A directory asked for as a file is answered IS_DIRECTORY, and the client lists it: not a refusal.
      if (a.outcome !== 'is-directory') this.firstRefusal ??= `${name ?? '?'}: ${a.detail ?? a.outcome}`;
    }
    if (this.requests === 1) {
      this.entry.name = name;
      this.entry.size = a.size;
    }
    if (ends) this.ending = a;
  }

  /** A large answer begins: the log names it even if the session fails while it is sent. */
  answering(name: string): void {
    if (this.requests === 0) this.entry.name = name;
  }

  /** Body bytes so far, while a large file is being sent. */
  sending(total: number): void {
    this.entry.bytes = total;
  }

  /** Something to say about how the session ended. */
  note(text: string): void {
    this.notes.push(text);
  }

  /**
   * Write the tally into the log entry: when the session ended normally (`ended`), its outcome is ok,
   * or that of the refusal that ended it; when it failed, the failure's outcome stays and the tally
   * follows its detail.
   */
  close(ended: boolean): void {
    const e = this.entry;
    e.requests = this.requests;
    // A session cut during a large answer keeps the bytes that answer had sent (sending()).
    e.bytes = Math.max(this.bytes, e.bytes);
    if (!ended) {
      if (this.requests > 0) e.detail = `${e.detail ?? e.outcome}; ${this.summary()}`;
      return;
    }
    if (this.requests === 0) {
      e.outcome = 'aborted';
      e.detail = ['the client closed without a request', ...this.notes].join('; ');
      return;
    }
    e.outcome = this.ending ? this.ending.outcome : 'ok';
    e.detail = this.ending ? `${this.ending.detail ?? this.ending.outcome}; ${this.summary()}` : this.summary();
  }

  private summary(): string {
    const parts = [...(this.ok > 0 ? [`${this.ok} ok`] : []), ...[...this.counts].map(([o, n]) => `${n} ${o}`)].join(', ');
    const text = `${this.requests} request${this.requests === 1 ? '' : 's'}: ${parts}`;
    return [this.firstRefusal ? `${text} (first refused: ${this.firstRefusal})` : text, ...this.notes].join('; ');
  }
}
