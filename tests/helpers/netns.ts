// Network namespaces made by a test: a switch namespace holding bridges, hosts on veth pairs, unique names, removed by close().
import { execFileSync } from 'node:child_process';
import { describe } from '@jest/globals';
import { join } from 'node:path';
import { serverSaid, startServer, type Server } from './netkit.js';

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why namespaces cannot be used here, or undefined when they can (we are root and `ip netns add` works). */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `nkprobe${process.pid}`;
  try {
    ip('netns', 'add', probe);
  } catch (err) {
    return `'ip netns add' failed: ${(err as { stderr?: string }).stderr?.trim() || String(err)}`;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch {
      // it was never made
    }
  }
  return undefined;
}

/** `describe`, or `describe.skip` with the reason in its title when namespaces cannot be made here. */
export function describeInNamespaces(title: string, fn: () => void): void {
  const reason = netnsUnavailable();
  if (reason) describe.skip(`${title} [skipped: ${reason}]`, fn);
  else describe(title, fn);
}

/** Whether a program is on PATH (for tests that also need tcpdump or avahi). */
export function have(program: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface LabHost {
  name: string;
  /** The namespace to run things in (`ip netns exec <ns> …`). */
  ns: string;
  /** Address (without prefix) per interface name. */
  addresses: Record<string, string>;
}

/**
 * A small LAN of namespaces. Names carry `tag` and the pid, so parallel runs never collide; every
 * address lives only inside these namespaces. Nothing touches the machine's own network namespace.
 */
export class Lab {
  readonly switchNs: string;
  private readonly namespaces: string[] = [];
  private readonly hosts = new Map<string, LabHost>();
  /** The switch-side port of each host interface, by `<host>/<iface>`. */
  private readonly ports = new Map<string, string>();
  private links = 0;

  private constructor(private readonly tag: string) {
    this.switchNs = this.nsName('sw');
    ip('netns', 'add', this.switchNs);
    this.namespaces.push(this.switchNs);
    ip('-n', this.switchNs, 'link', 'set', 'lo', 'up');
  }

  /** A lab with one bridge `br0`; more with addBridge(). */
  static create(tag: string): Lab {
    const lab = new Lab(tag);
    lab.addBridge('br0');
    return lab;
  }

  private nsName(role: string): string {
    return `nk${this.tag}-${role}-${process.pid}`;
  }

  addBridge(name: string): void {
    ip('-n', this.switchNs, 'link', 'add', name, 'type', 'bridge');
    ip('-n', this.switchNs, 'link', 'set', name, 'up');
  }

  addHost(name: string): LabHost {
    const ns = this.nsName(name);
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const host: LabHost = { name, ns, addresses: {} };
    this.hosts.set(name, host);
    return host;
  }

  /** Plug `host` into `bridge` as `iface` with `cidr` (e.g. 10.77.0.1/24); no default route, as on an isolated LAN. */
  connect(host: LabHost, bridge: string, iface: string, cidr: string, up = true): void {
    const n = this.links++;
    const inside = `nkv${n}x${process.pid}`.slice(0, 15);
    const port = `p${n}${iface}`.slice(0, 15);
    ip('link', 'add', inside, 'netns', host.ns, 'type', 'veth', 'peer', 'name', port, 'netns', this.switchNs);
    ip('-n', this.switchNs, 'link', 'set', port, 'master', bridge, 'up');
    this.ports.set(`${host.name}/${iface}`, port);
    ip('-n', host.ns, 'link', 'set', inside, 'name', iface);
    ip('-n', host.ns, 'addr', 'add', cidr, 'dev', iface);
    if (up) ip('-n', host.ns, 'link', 'set', iface, 'up');
    host.addresses[iface] = cidr.split('/')[0]!;
  }

  /** Move `host`'s `iface` to another bridge, as if its cable were plugged into another switch. */
  rewire(host: LabHost, iface: string, bridge: string): void {
    ip('-n', this.switchNs, 'link', 'set', this.ports.get(`${host.name}/${iface}`)!, 'master', bridge);
  }

  setLink(host: LabHost, iface: string, state: 'up' | 'down'): void {
    ip('-n', host.ns, 'link', 'set', iface, state);
  }

  /** Kill what still runs inside (by pid), then delete every namespace; veths and bridges go with them. */
  close(): void {
    for (const ns of this.namespaces) {
      try {
        for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // already gone
          }
        }
      } catch {
        // namespace already gone
      }
    }
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    this.namespaces.length = 0;
  }
}

/** A command prefix that runs the rest in a UTS namespace of its own whose host name is `name` (needs `unshare`). */
export function withHostName(name: string): string[] {
  return ['unshare', '-u', 'sh', '-c', 'hostname "$0" && exec "$@"', name];
}

export interface LabServerOptions {
  /**
   * The host name the server sees: each lab host is a machine of its own, named `<host>` by default
   * (namespaces otherwise share this machine's name, and servers in them would all claim it).
   */
  hostName?: string;
  /** A fixed port instead of 0 (safe: the namespace is the test's own). */
  port?: number;
}

/** netkit servers started in a lab's namespaces (port 0, a config directory per host under `dir`), stopped by stopAll(). */
export class LabServers {
  private readonly all: Server[] = [];

  constructor(private readonly dir: string) {}

  /** Start `netkit args… --port 0` in `host` and, unless --no-announce, wait until it says it is announcing. */
  async start(host: LabHost, args: string[], env: NodeJS.ProcessEnv = {}, o: LabServerOptions = {}): Promise<Server> {
    const hostName = o.hostName ?? host.name;
    const s = await startServer([...args, '--port', String(o.port ?? 0)], {
      netns: host.ns,
      cwd: this.dir,
      env: { XDG_CONFIG_HOME: join(this.dir, `cfg-${host.name}`), ...env },
      ...(have('unshare') ? { prefix: withHostName(hostName) } : {}),
    });
    this.all.push(s);
    if (!args.includes('--no-announce')) await serverSaid(s, /netkit: announcing /);
    return s;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.all.map((s) => s.stop('SIGKILL')));
  }
}
