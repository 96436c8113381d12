// mDNS peers written by hand, run in a lab namespace: a crude responder that never renames (an old device, a clone, an impostor), and raw askers.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { LabHost } from './netns.js';

const SCRIPT = fileURLToPath(new URL('./mdns-responder.mjs', import.meta.url));

/** Run a helper script (tests/helpers/NAME) in `host`'s namespace with JSON options; resolves with its output (killed after 10 s). */
export async function runHelper(host: LabHost, name: string, options: object): Promise<{ code: number | null; stdout: string }> {
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, fileURLToPath(new URL(`./${name}`, import.meta.url)), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout };
}

export interface RogueService {
  /** The instance name, e.g. `dup`. */
  instance: string;
  /** `_netkit-file._tcp` or `_netkit-disk._udp`. */
  type: string;
  /** The SRV target, e.g. `clone.local`. */
  host: string;
  port: number;
  /** TXT strings; null: no TXT record at all. */
  txt: string[] | null;
  /** A records for `host`; [] for none at all. */
  addresses: string[];
}

export interface Rogue {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Start the responder on `iface` of `host`; resolves once it has announced itself. */
export async function startRogue(host: LabHost, iface: string, service: RogueService): Promise<Rogue> {
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, SCRIPT, JSON.stringify({ ...service, address: host.addresses[iface] })], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`mdns-responder exited (${code}): ${err}`)));
  });
  return {
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const closed = once(child, 'close');
      child.kill('SIGTERM');
      await closed;
    },
  };
}
