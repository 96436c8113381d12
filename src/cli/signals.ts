// SIGINT/SIGTERM, and a stdout that cannot be written: servers close cleanly, a fetch stops and keeps its partial file, and the process ends by itself.

/** Why something must stop: SIGINT, SIGTERM, or 'OUTPUT' (stdout cannot be written; no signal came). */
export type StopReason = NodeJS.Signals | 'OUTPUT';
type Stop = (reason: StopReason) => void;
const stoppers = new Set<Stop>();

/** Something must stop now although no signal came (stdout failed): every waiting server or fetch is told so. */
export function stopEverything(): void {
  for (const stop of [...stoppers]) stop('OUTPUT');
}

/** How a server says why it stops: the signal's name, or what went wrong. */
export function stopText(reason: StopReason): string {
  return reason === 'OUTPUT' ? 'stdout cannot be written' : reason;
}

/**
 * Call `stop` on the first SIGINT or SIGTERM (or stopEverything()). A second signal ends the process at
 * once (130 or 143), as people expect from a second Ctrl-C. Returns a function that stops listening.
 */
export function onInterrupt(stop: Stop): () => void {
  let done = false;
  const off = (): void => {
    done = true;
    stoppers.delete(onSignal);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  const onSignal = (reason: StopReason): void => {
    if (done) return;
    off();
    process.once('SIGINT', () => process.exit(130));
    process.once('SIGTERM', () => process.exit(143));
    stop(reason);
  };
  stoppers.add(onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return off;
}

/** Resolve with the reason on the first SIGINT or SIGTERM, or a stdout failure (servers wait on this to close). */
export function waitForShutdown(): Promise<StopReason> {
  return new Promise((resolve) => onInterrupt(resolve));
}
