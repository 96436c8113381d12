// Prometheus metrics of a disk server: node_exporter's filesystem metrics (same names, labels and help) read at scrape time, and netkit's own counters; served over HTTP.
import { timingSafeEqual, createHash } from 'node:crypto';
import { Counter, Gauge, Registry } from 'prom-client';
import { listenHttp, type HttpListener, type HttpRequest, type HttpResponse } from '../../transport/http.js';
import type { DiskFactsSource, DiskSnapshot } from './facts.js';
import type { FsFigures } from '../../protocol/disk-v1.js';
import { FailureThrottle, sourceKey } from '../limits.js';

const LABELS = ['device', 'mountpoint', 'fstype'] as const;

/** node_exporter's filesystem metrics (collector/filesystem_common.go), so dashboards and alerts work unchanged. */
const FS_METRICS = {
  size: ['node_filesystem_size_bytes', 'Filesystem size in bytes.'],
  free: ['node_filesystem_free_bytes', 'Filesystem free space in bytes.'],
  avail: ['node_filesystem_avail_bytes', 'Filesystem space available to non-root users in bytes.'],
  files: ['node_filesystem_files', 'Filesystem total file nodes.'],
  filesFree: ['node_filesystem_files_free', 'Filesystem total free file nodes.'],
  readonly: ['node_filesystem_readonly', 'Filesystem read-only status.'],
  deviceError: ['node_filesystem_device_error', 'Whether an error occurred while getting statistics for the given device.'],
} as const;

export interface DiskMetrics {
  registry: Registry;
  /** Count one datagram's outcome (the server's onQuery). */
  countQuery(outcome: string): void;
  /** Read the figures now and render the exposition. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** A private registry: nothing global, nothing on a timer; the figures are read when Prometheus asks. */
export function createDiskMetrics(facts: DiskFactsSource, version: string): DiskMetrics {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: readonly string[] = LABELS): Gauge => new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });
  const g = Object.fromEntries(Object.entries(FS_METRICS).map(([k, [name, help]]) => [k, gauge(name, help)])) as Record<keyof typeof FS_METRICS, Gauge>;
  const queries = new Counter({ name: 'netkit_disk_queries_total', help: 'Datagrams received by the disk server, by what it did with them.', labelNames: ['outcome'], registers: [registry] });
  const build = gauge('netkit_build_info', 'A metric with a constant 1 value labelled by the netkit version and the Node.js version that runs it.', ['version', 'nodeversion']);
  build.set({ version, nodeversion: process.version }, 1);

  const fill = (snap: DiskSnapshot): void => {
    for (const x of Object.values(g)) x.reset();
    for (const f of snap.filesystems) setFs(f);
  };
  const setFs = (f: FsFigures): void => {
    const labels = { device: f.device, mountpoint: f.mount, fstype: f.fstype };
    g.deviceError.set(labels, f.error ? 1 : 0);
    g.readonly.set(labels, f.readonly ? 1 : 0);
    // Like node_exporter: a filesystem whose statistics failed has no size figures at all, rather than stale ones.
    if (f.error) return;
    g.size.set(labels, Number(f.total));
    g.free.set(labels, Number(f.free));
    g.avail.set(labels, Number(f.available));
    if (f.files !== undefined) g.files.set(labels, Number(f.files));
    if (f.filesFree !== undefined) g.filesFree.set(labels, Number(f.filesFree));
  };

  return {
    registry,
    countQuery: (outcome) => queries.inc({ outcome }),
    async render() {
      fill(await facts.read('all', { patient: true }));
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  metrics: DiskMetrics;
  /** When set, /metrics requires `Authorization: Bearer <token>` (Prometheus' `authorization` scrape setting). */
  bearerToken?: string;
  /** Failed bearer tokens per source (default: a fresh one, as the file server's). */
  throttle?: FailureThrottle;
  onError?: (err: unknown) => void;
}

/** Constant-time comparison of a presented bearer token with ours (hashed first, so lengths never leak). */
function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * The /metrics handler. With a bearer token, a wrong one counts as a failed attempt for its source
 * and is answered only after the hold-off (the file server's HTTPS and v1 rules); while a source is
 * held off its requests get 401 with Retry-After at once, without a look at the token. A request
 * without Authorization is no guess and costs nothing.
 */
export function metricsHandler(metrics: DiskMetrics, bearerToken?: string, throttle: FailureThrottle = new FailureThrottle()): (req: HttpRequest) => Promise<HttpResponse> {
  const text = { 'Content-Type': 'text/plain; charset=utf-8' };
  const challenge = { ...text, 'WWW-Authenticate': 'Bearer realm="netkit"' };
  return async (req) => {
    if (req.path !== '/metrics') return { status: 404, headers: text, body: 'not found: try /metrics\n' };
    if (req.method !== 'GET' && req.method !== 'HEAD') return { status: 405, headers: { ...text, Allow: 'GET, HEAD' }, body: 'method not allowed\n' };
    if (bearerToken !== undefined) {
      const source = sourceKey(req.remoteAddress);
      const heldOff = throttle.blockedFor(source);
      if (heldOff > 0) {
        const secs = Math.ceil(heldOff / 1000);
        return { status: 401, headers: { ...challenge, 'Retry-After': String(secs) }, body: `too many failed attempts from this address; try again in ${secs}s\n` };
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.authorization ?? '');
      if (!m) return { status: 401, headers: challenge, body: 'unauthorized: send "Authorization: Bearer <metrics token>" (netkit disk serve --print-metrics-token)\n' };
      if (!tokenMatches(m[1]!, bearerToken)) {
        await pause(throttle.recordFailure(source).delayMs);
        return { status: 401, headers: challenge, body: 'unauthorized: the bearer token is not this server\'s metrics token\n' };
      }
      throttle.recordSuccess(source);
    }
    const r = await metrics.render();
    return { status: 200, headers: { 'Content-Type': r.contentType }, body: r.body };
  };
}

export function startMetricsServer(o: MetricsServerOptions): Promise<HttpListener> {
  return listenHttp({ host: o.host, port: o.port, handle: metricsHandler(o.metrics, o.bearerToken, o.throttle), onError: o.onError });
}
