// The error model: one class, a stable code per failure, and the exit code each code maps to.

/**
 * Every failure netkit expects has a code here. Tests assert codes, people read messages.
 * The exit status of a command that fails with a code is EXIT_CODES[code].
 */
export const EXIT_CODES = {
  // 1: the operation failed in a way that has no more specific status
  FAILED: 1,
  INTERNAL: 1,
  // 2: the command line was wrong, or does not say enough (several servers found where one was expected)
  USAGE: 2,
  AMBIGUOUS: 2,
  // 3: the thing asked for does not exist
  NOT_FOUND: 3,
  // 4: the peer refused: the jail, a bad request, a missing or wrong secret
  FORBIDDEN: 4,
  BAD_REQUEST: 4,
  UNAUTHORIZED: 4,
  // 5: the server is at capacity or rate-limited us
  BUSY: 5,
  // 6: we could not reach the peer at all
  CONNECT_REFUSED: 6,
  HOST_NOT_FOUND: 6,
  UNREACHABLE: 6,
  ADDRESS_IN_USE: 6,
  // 7: the peer did not answer in time
  TIMEOUT: 7,
  // 8: the peer vanished or spoke nonsense mid-exchange
  PEER_CLOSED: 8,
  PROTOCOL: 8,
  CHANGED: 8,
  TOO_LARGE: 8,
  // 9: a local file-system problem
  EXISTS: 9,
  DISK_FULL: 9,
  PERMISSION: 9,
  LOCAL_IO: 9,
  // 10: the bytes did not verify
  INTEGRITY: 10,
  // 11: TLS trust failures
  TLS_TRUST: 11,
  // 12, 13: `disk query` thresholds: some filesystem is past --warn / --crit (or read-only, or errored)
  THRESHOLD_WARNING: 12,
  THRESHOLD_CRITICAL: 13,
  // 14: another netkit is fetching the same file into the same directory
  LOCKED: 14,
  // 15: the result could not be written to stdout (a closed pipe, a full device)
  OUTPUT: 15,
  // 16: several files were asked for; some arrived, some failed (each is listed with its reason)
  PARTIAL: 16,
  // 130, 143: stopped by SIGINT (Ctrl-C) or SIGTERM, as a shell reports a process killed by them
  INTERRUPTED: 130,
  TERMINATED: 143,
} as const;

export type ErrorCode = keyof typeof EXIT_CODES;

export class NetkitError extends Error {
  override readonly name = 'NetkitError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export function isNetkitError(err: unknown): err is NetkitError {
  return err instanceof NetkitError;
}

/** The errno string of a Node system error, if it has one. */
export function errnoOf(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

/** What the less common errno names mean, for messages (the common ones have error codes of their own). */
const ERRNO_WORDS: Record<string, string> = {
  ENAMETOOLONG: 'the name is too long for the file system',
  EISDIR: 'it is a directory',
  ELOOP: 'a symbolic link is in the way',
  ENXIO: 'not a file (a FIFO without a reader, or a socket)',
  EIO: 'input/output error (a failing disk or a lost network file system?)',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files on the system',
  EBUSY: 'the file or device is busy',
  EXDEV: 'it is on another file system',
  ETXTBSY: 'the file is a running program',
};

/**
 * Translate a local file-system error (open, write, rename, mkdir) into a NetkitError.
 * `what` names the path or action for the message, e.g. "cannot write ./out.bin".
 */
export function fsError(err: unknown, what: string, notFoundHint?: string): NetkitError {
  if (err instanceof NetkitError) return err;
  const errno = errnoOf(err);
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return new NetkitError('DISK_FULL', `${what}: no space left on the device`, 'free some space, or choose another --out', { cause: err });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new NetkitError('PERMISSION', `${what}: permission denied`, 'choose a directory you can write to', { cause: err });
    case 'EEXIST':
      return new NetkitError('EXISTS', `${what}: already exists`, 'use --force to overwrite it', { cause: err });
    case 'ENOENT':
    case 'ENOTDIR':
      return new NetkitError('NOT_FOUND', `${what}: no such file or directory`, notFoundHint, { cause: err });
    default:
      return new NetkitError('LOCAL_IO', `${what}: ${(errno && ERRNO_WORDS[errno]) ?? errno ?? (err instanceof Error ? err.message : String(err))}`, undefined, { cause: err });
  }
}
