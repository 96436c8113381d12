// A program on a real pseudo-terminal: tmux on a private server, what the screen shows, every byte written to it, keys, and how the program ended.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function hasTmux(): boolean {
  return spawnSync('tmux', ['-V']).status === 0;
}

export interface Pane {
  /** What the screen shows now, one string per row (trailing blanks trimmed). */
  screen(): string[];
  /** Every byte the program has written to the terminal so far. */
  raw(): string;
  /** A tmux format about the pane, e.g. '#{alternate_on}'. */
  format(f: string): string;
  keys(...keys: string[]): void;
  resize(columns: number, rows: number): void;
  /** Poll (every 50 ms, bounded) until `check` holds; throws with the screen if it never does. */
  waitFor(what: string, check: () => boolean, timeoutMs?: number): Promise<void>;
  /** Once the program has ended: its exit status (the pane's shell stays, so the terminal can be inspected). */
  exitStatus(): Promise<number>;
  close(): void;
}

/**
 * Run `command` (argv) in a detached tmux pane of the given size, from a shell that is still there after
 * the program exits (and then prints its exit status), as in a user's terminal.
 */
export function startPane(command: readonly string[], size: { columns: number; rows: number }, env: Record<string, string> = {}): Pane {
  const socket = `netkit-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const dir = mkdtempSync(join(tmpdir(), 'netkit-tmux-'));
  const log = join(dir, 'pane.out');
  const tmux = (...args: string[]): string => {
    const r = spawnSync('tmux', ['-L', socket, '-f', '/dev/null', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  // The shell waits for a key, so that logging is in place before the program runs. It catches SIGINT
  // (a caught signal is reset for the program it starts), so that Ctrl-C ends only the program, as at a prompt.
  const script = `trap true INT; read go; ${command.map(quote).join(' ')}; echo "[exited $?]"; read done`;
  tmux('new-session', '-d', '-s', 'w', '-x', String(size.columns), '-y', String(size.rows), ...envArgs, `sh -c ${quote(script)}`);
  tmux('pipe-pane', '-t', 'w', '-o', `cat >> ${quote(log)}`);
  tmux('send-keys', '-t', 'w', 'Enter');
  const pane: Pane = {
    screen: () => tmux('capture-pane', '-p', '-t', 'w').replace(/\n$/, '').split('\n').map((l) => l.trimEnd()),
    raw: () => {
      try {
        return readFileSync(log, 'latin1');
      } catch {
        return '';
      }
    },
    format: (f) => tmux('display-message', '-p', '-t', 'w', f).trim(),
    keys: (...keys) => void tmux('send-keys', '-t', 'w', ...keys),
    resize: (columns, rows) => void tmux('resize-window', '-t', 'w', '-x', String(columns), '-y', String(rows)),
    async waitFor(what, check, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the screen shows:\n${pane.screen().join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async exitStatus() {
      const status = (): RegExpExecArray | null => /\[exited (\d+)\]/.exec(pane.screen().join('\n'));
      await pane.waitFor('the program to exit', () => status() !== null);
      return Number(status()![1]);
    },
    close() {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return pane;
}
