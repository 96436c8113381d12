// stdout that cannot be written (a closed pipe, a full device): one message and exit 15 instead of a stack trace, and whatever runs is told to stop.
import { NetkitError, errnoOf } from '../errors.js';
import { stopEverything } from './signals.js';

let failure: Error | undefined;

function describe(err: Error): NetkitError {
  const errno = errnoOf(err);
  const why =
    errno === 'EPIPE'
      ? 'the pipe is closed (the reading command ended)'
      : errno === 'ENOSPC'
        ? 'no space left on the device'
        : (errno ?? err.message);
  return new NetkitError('OUTPUT', `cannot write to stdout: ${why}`, errno === 'EPIPE' ? 'read all of the output, or send it to a file' : undefined, { cause: err });
}

/** Catch write errors on stdout (and ignore them on stderr, where nothing could report them). Call once, first. */
export function guardStdio(): void {
  process.stdout.on('error', (err: Error) => {
    if (failure) return;
    failure = err;
    stopEverything(); // a server whose listening line cannot be written has nobody to tell where it listens
  });
  process.stderr.on('error', () => undefined);
}

/** After the command: wait until everything written to stdout was handed over, and say if it could not be. */
export function stdoutFailure(): Promise<NetkitError | undefined> {
  return new Promise((resolve) => {
    const done = (): void => resolve(failure ? describe(failure) : undefined);
    if (failure || process.stdout.destroyed) {
      done();
      return;
    }
    process.stdout.write('', (err) => {
      if (err) failure ??= err;
      // The 'error' event of a failed write comes on the next tick.
      process.nextTick(done);
    });
  });
}
