// SIGINT/SIGTERM, and a stdout that cannot be written: servers close cleanly, a fetch stops and keeps its partial file, and the process ends by itself.

type Stop = (signal: NodeJS.Signals) => void;
const stoppers = new Set<Stop>();

/** Something must stop now although no signal came (stdout failed): every waiting server or fetch is told, as if by SIGTERM. */
export function stopEverything(): void {
  for (const stop of [...stoppers]) stop('SIGTERM');
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
  const onSignal = (signal: NodeJS.Signals): void => {
    if (done) return;
    off();
    process.once('SIGINT', () => process.exit(130));
    process.once('SIGTERM', () => process.exit(143));
    stop(signal);
  };
  stoppers.add(onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return off;
}

/** Resolve with the signal's name on the first SIGINT or SIGTERM (servers wait on this to close). */
export function waitForShutdown(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => onInterrupt(resolve));
}
