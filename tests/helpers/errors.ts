// Asserting on netkit's error model in tests: the stable code a call fails with.
import { expect } from '@jest/globals';
import { NetkitError } from '../../src/errors.js';

/** The NetkitError code `fn` throws, or undefined when it returns; anything else thrown fails the test. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NetkitError);
    return (err as NetkitError).code;
  }
  return undefined;
}

/** The NetkitError `p` rejects with; a fulfilment, or any other error, fails the test. */
export async function rejection(p: Promise<unknown>): Promise<NetkitError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(NetkitError);
    return err as NetkitError;
  }
  throw new Error('expected a rejection');
}
