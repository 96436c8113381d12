// The shared secret: generate one, load it from NETKIT_TOKEN or --token-file, validate it, and judge its strength.
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';
import { inspect } from 'node:util';
import { NetkitError, fsError } from '../errors.js';
import { deriveKey, deriveMetricsToken } from '../protocol/auth.js';
import type { KeyObject } from 'node:crypto';

/** The environment variable that carries the secret. There is deliberately no --token=VALUE option. */
export const TOKEN_ENV = 'NETKIT_TOKEN';
/** Bytes of randomness in a token from `netkit token` (43 base64url characters). */
export const TOKEN_BYTES = 32;
/** Below this many characters a token is called short: 22 base64url characters carry 132 bits. */
export const MIN_TOKEN_CHARS = 22;
/** Longer than any sensible token; also caps what we read from a token file. */
export const MAX_TOKEN_CHARS = 1024;

/** A new random secret: 32 bytes from the OS CSPRNG, base64url without padding. */
export function generateToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/**
 * A loaded secret. The token text is kept in a private field and the object prints as
 * `Secret(<source>)`, so logging or inspecting it never leaks the value.
 */
export class Secret {
  readonly #token: string;

  constructor(
    token: string,
    /** Where it came from, for messages: `NETKIT_TOKEN` or `--token-file <path>`. */
    readonly source: string,
    /** Human-readable warnings (short token, few distinct characters); the CLI prints them to stderr. */
    readonly warnings: readonly string[] = [],
  ) {
    this.#token = token;
  }

  /** The MAC key for one service (HKDF-SHA-256; see protocol/auth.ts). */
  key(purpose: 'disk' | 'file'): KeyObject {
    return deriveKey(this.#token, purpose);
  }

  /** The token as an HTTP bearer credential, for HTTPS only (`file fetch https://…`). */
  bearer(): string {
    return this.#token;
  }

  /**
   * The bearer token of `disk serve --metrics` (Prometheus' `credentials_file`), derived from the secret
   * (protocol/auth.ts deriveMetricsToken): it crosses plain HTTP, so the secret itself never does.
   */
  metricsToken(): string {
    return deriveMetricsToken(this.#token);
  }

  /** The raw token. Only for tests that check the token never crosses the wire. */
  reveal(): string {
    return this.#token;
  }

  toString(): string {
    return `Secret(${this.source})`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Check a token's syntax and return it normalised: surrounding whitespace (a file's trailing newline)
 * is removed; what remains must be 1..1024 printable ASCII characters with no line breaks.
 * Printable ASCII only, so the same secret typed on two machines cannot differ by Unicode normalisation.
 */
export function normalizeToken(raw: string, source: string): string {
  const token = raw.trim();
  if (token.length === 0) {
    throw new NetkitError('USAGE', `the secret in ${source} is empty`, "generate one with 'netkit token'");
  }
  if (token.length > MAX_TOKEN_CHARS) {
    throw new NetkitError('USAGE', `the secret in ${source} is longer than ${MAX_TOKEN_CHARS} characters`, "generate one with 'netkit token'");
  }
  if (/[\r\n]/.test(token)) {
    throw new NetkitError('USAGE', `the secret in ${source} spans several lines`, 'put only the secret in it, on one line');
  }
  if (!/^[\x20-\x7e]+$/.test(token)) {
    throw new NetkitError('USAGE', `the secret in ${source} contains characters other than printable ASCII`, "generate one with 'netkit token'");
  }
  return token;
}

/**
 * Reasons a token is weak, or [] when it looks like a strong random secret. Offline guessing of a
 * recorded exchange is the threat, so short or repetitive tokens are worth a warning.
 */
export function tokenWeaknesses(token: string): string[] {
  const reasons: string[] = [];
  if (token.length < MIN_TOKEN_CHARS) {
    reasons.push(`it has ${token.length} characters; use at least ${MIN_TOKEN_CHARS} random base64url characters (16 bytes)`);
  }
  // A random 22-character base64url string has about 19 distinct characters; fewer than 12 means a pattern.
  const distinct = new Set(token).size;
  if (token.length >= MIN_TOKEN_CHARS && distinct < 12) {
    reasons.push(`it uses only ${distinct} distinct characters, so it is probably not random`);
  }
  return reasons;
}

function weakWarnings(token: string, source: string): string[] {
  const why = tokenWeaknesses(token);
  return why.length === 0 ? [] : [`the secret in ${source} is weak: ${why.join('; ')}. Recorded traffic lets an attacker guess it offline; generate one with 'netkit token'`];
}

/** Build a Secret from text (already in hand), validating and judging it. */
export function secretFromText(raw: string, source: string): Secret {
  const token = normalizeToken(raw, source);
  return new Secret(token, source, weakWarnings(token, source));
}

export interface LoadSecretOptions {
  /** The --token-file path, if given. It wins over the environment variable. */
  tokenFile?: string | undefined;
  /** The environment to read NETKIT_TOKEN from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Load the secret, or return undefined when none is configured (NETKIT_TOKEN unset or empty and no
 * --token-file). An explicit --token-file wins over NETKIT_TOKEN; the Secret's `source` says which.
 * Throws NetkitError (USAGE, NOT_FOUND, PERMISSION, …) for a file that is missing, unsafe or invalid.
 */
export async function loadSecret(opts: LoadSecretOptions = {}): Promise<Secret | undefined> {
  if (opts.tokenFile !== undefined) return readTokenFile(opts.tokenFile);
  const value = (opts.env ?? process.env)[TOKEN_ENV];
  if (value === undefined || value === '') return undefined;
  return secretFromText(value, TOKEN_ENV);
}

/**
 * Read a token file. It must be a regular file, and neither group nor others may read or write it
 * (like ssh with a private key): on a shared machine anyone who can read it can impersonate us.
 * POSIX mode bits mean nothing on Windows, so the permission check is skipped there.
 */
export async function readTokenFile(path: string, platform: NodeJS.Platform = process.platform): Promise<Secret> {
  const source = `--token-file ${path}`;
  if (path === '') throw new NetkitError('USAGE', '--token-file needs a path', 'create one with: netkit token > FILE && chmod 600 FILE');
  // O_NONBLOCK: opening a FIFO must not hang waiting for a writer; fstat then rejects it.
  const flags = fsc.O_RDONLY | (fsc.O_NONBLOCK ?? 0) | (fsc.O_NOCTTY ?? 0);
  let handle;
  try {
    handle = await open(path, flags);
  } catch (err) {
    throw fsError(err, `cannot read the token file ${path}`, 'check the path; to make a secret: netkit token > FILE && chmod 600 FILE (the same secret on server and client)');
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new NetkitError('USAGE', `the token file ${path} is not a regular file`, 'point --token-file at a file that holds only the secret');
    }
    if (platform !== 'win32' && (st.mode & 0o066) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      throw new NetkitError(
        'PERMISSION',
        `the token file ${path} is accessible by other users (mode ${mode})`,
        `make it private: chmod 600 ${path}`,
      );
    }
    if (st.size > MAX_TOKEN_CHARS + 2) {
      throw new NetkitError('USAGE', `the token file ${path} is too large to hold a secret (${st.size} bytes)`, 'put only the secret in it');
    }
    // Read at most one byte more than allowed, so a file that grew after fstat is still caught.
    const buf = Buffer.alloc(MAX_TOKEN_CHARS + 3);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_TOKEN_CHARS + 2) {
      throw new NetkitError('USAGE', `the token file ${path} is too large to hold a secret`, 'put only the secret in it');
    }
    return secretFromText(buf.subarray(0, bytesRead).toString('utf8'), source);
  } catch (err) {
    throw err instanceof NetkitError ? err : fsError(err, `cannot read the token file ${path}`);
  } finally {
    await handle.close();
  }
}
