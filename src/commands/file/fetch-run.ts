// Running `netkit file fetch`: the bar on a terminal, then one summary line (or one JSON object) on stdout.
import { fetchFile, type FetchResult } from '../../services/file-fetch.js';
import { tcpTransport } from '../../transport/tcp.js';
import { formatBytes, formatRate, sanitize } from '../../cli/output.js';
import { createProgressBar, type Progress } from '../../cli/progress.js';
import { isNetkitError } from '../../errors.js';

export interface FetchRunOptions {
  name: string;
  host: string;
  port: number;
  outDir: string;
  force: boolean;
  json: boolean;
  quiet: boolean;
  timeoutMs: number;
  classic: boolean;
}

function summary(r: FetchResult): string {
  const where = sanitize(r.path);
  const rate = formatRate(r.received, r.durationMs);
  const resumed = r.resumedFrom > 0 ? `, resumed at ${formatBytes(r.resumedFrom)}` : '';
  if (!r.verified) {
    return `saved ${where} (${formatBytes(r.size)}, UNVERIFIED: the classic protocol has no checksum; sha256 of what arrived ${r.sha256}, ${rate})\n`;
  }
  return `saved ${where} (${formatBytes(r.size)}, sha256 ${r.sha256} verified, ${rate}${resumed})\n`;
}

export async function runFileFetch(o: FetchRunOptions): Promise<void> {
  const bar: Progress | undefined = o.quiet ? undefined : await createProgressBar(process.stderr, o.name.split('/').pop() ?? o.name);
  try {
    const result = await fetchFile({
      name: o.name,
      host: o.host,
      port: o.port,
      outDir: o.outDir,
      force: o.force,
      timeoutMs: o.timeoutMs,
      classic: o.classic,
      transport: tcpTransport,
      onProgress: bar ? (received, total) => bar.update(received, total) : undefined,
      onNotice: o.quiet ? undefined : (m) => void process.stderr.write(`netkit: ${sanitize(m)}\n`),
    });
    bar?.stop();
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, ...result, durationMs: Math.round(result.durationMs) })}\n`);
    } else if (!o.quiet) {
      process.stdout.write(summary(result));
    }
  } catch (err) {
    bar?.stop();
    if (o.json && isNetkitError(err)) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: { code: err.code, exitCode: err.exitCode, message: err.message } })}\n`);
    }
    throw err;
  }
}
