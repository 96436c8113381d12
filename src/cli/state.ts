// The exit status a command handler wants, read once by main() after parsing finishes.
export const runState = { exitCode: 0 };

/** Record a failure status without throwing (e.g. some hosts answered, one did not). */
export function setExitCode(code: number): void {
  if (code > runState.exitCode) runState.exitCode = code;
}
