// Waiting for SIGINT/SIGTERM so that servers can close cleanly and the process ends by itself.

/**
 * Resolve with the signal's name on the first SIGINT or SIGTERM. A second signal while the
 * server is still draining ends the process at once, as people expect from a second Ctrl-C.
 */
export function waitForShutdown(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
