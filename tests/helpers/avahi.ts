// avahi-daemon as an independent mDNS implementation inside a test's namespace: its own config, its own D-Bus, its own /run.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { have, type LabHost } from './netns.js';

const TOOLS = ['avahi-daemon', 'avahi-browse', 'avahi-publish', 'dbus-daemon', 'unshare'];

/** Why avahi cannot run here (a missing program), or undefined. */
export function avahiUnavailable(): string | undefined {
  const missing = TOOLS.filter((t) => !have(t));
  return missing.length ? `${missing.join(', ')} not installed (apt-get install avahi-daemon avahi-utils dbus util-linux)` : undefined;
}

export interface Avahi {
  /** Run an avahi client (avahi-browse …) in the namespace, against this daemon; resolves with its output. */
  run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Start `avahi-publish …`; resolves once the service is established. */
  publish(args: string[]): Promise<ChildProcess>;
  close(): Promise<void>;
}

/** Resolve once `re` appears on the child's stream; reject if it exits first or takes over 10 s. The stream keeps being read. */
function waitForText(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    let settled = false;
    const timer = setTimeout(() => onExit(), 10_000);
    const onExit = (): void => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`${what} did not print ${re} (it said: ${text})`));
      settled = true;
    };
    child[stream]!.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      if (!settled && re.test(text)) {
        settled = true;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      }
    });
    child.once('exit', onExit);
  });
}

/**
 * Start D-Bus and avahi-daemon in `host`'s namespace. The daemon gets a private mount namespace with a
 * tmpfs on /run (its pid file and socket), a private bus whose socket lives in `dir`, and a config that
 * publishes only its host name, on eth0, over IPv4.
 */
export async function startAvahi(host: LabHost, dir: string, hostName: string): Promise<Avahi> {
  const bus = join(dir, 'bus');
  writeFileSync(
    join(dir, 'dbus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_type="method_call"/><allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/><allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="method_return"/><allow receive_type="error"/><allow receive_type="signal"/>
  </policy>
</busconfig>
`,
  );
  writeFileSync(
    join(dir, 'avahi.conf'),
    `[server]\nhost-name=${hostName}\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\nenable-dbus=yes\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\n`,
  );
  const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };
  const children: ChildProcess[] = [];
  const dbus = spawn('ip', ['netns', 'exec', host.ns, 'dbus-daemon', `--config-file=${join(dir, 'dbus.conf')}`, '--nofork', '--print-address']);
  children.push(dbus);
  try {
    await waitForText(dbus, 'stdout', /unix:path=/, 'dbus-daemon');
    dbus.stderr!.resume();
    const daemon = spawn(
      'ip',
      ['netns', 'exec', host.ns, 'unshare', '-m', 'sh', '-c', `mount -t tmpfs tmpfs /run && exec avahi-daemon -f '${join(dir, 'avahi.conf')}' --no-drop-root --no-chroot --no-rlimits --no-proc-title`],
      { env },
    );
    children.push(daemon);
    daemon.stdout!.resume();
    await waitForText(daemon, 'stderr', /Server startup complete/, 'avahi-daemon');
  } catch (err) {
    for (const c of children) c.kill('SIGKILL');
    throw err;
  }
  const inNs = (args: string[]): ChildProcess => spawn('ip', ['netns', 'exec', host.ns, ...args], { env });
  return {
    async run(args) {
      const child = inNs(args);
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const [code] = (await once(child, 'close')) as [number | null];
      clearTimeout(timer);
      return { code, stdout, stderr };
    },
    async publish(args) {
      const child = inNs(['avahi-publish', ...args]);
      children.push(child);
      await waitForText(child, 'stderr', /Established under name/, 'avahi-publish');
      child.stdout!.resume();
      return child;
    },
    async close() {
      await Promise.all(
        children.reverse().map(async (c) => {
          if (c.exitCode !== null || c.signalCode !== null) return;
          const closed = once(c, 'close');
          c.kill('SIGTERM');
          const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
          await closed;
          clearTimeout(timer);
        }),
      );
    },
  };
}
