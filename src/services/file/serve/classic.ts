// The classic session (docs/protocol.md section 3.2): an unterminated name in, an 8-byte size field and the bytes out, or "-1".
import { isNetkitError } from '../../../errors.js';
import { CLASSIC_MAX_SIZE, CLASSIC_MISSING, CLASSIC_NAME_MAX, classicNameComplete, decodeClassicName, encodeClassicSize } from '../../../protocol/file-classic.js';
import { sendBody } from './body.js';
import type { Protocol } from './dispatch.js';
import { identityChange } from './hash-cache.js';
import { IdleDeadline } from './idle.js';
import { openInJail } from './jail.js';
import { refusalOutcome, type Session } from './session.js';
import type { Outcome } from './types.js';

/** "-1", the only refusal a seed client understands; the log says which refusal it was. */
async function refuse(s: Session, outcome: Outcome, detail: string): Promise<void> {
  s.outcome(outcome, detail);
  await s.writeAll(CLASSIC_MISSING);
  await s.finish();
}

async function serveClassic(s: Session): Promise<void> {
  const { ctx, reader } = s;
  const nameBytes = await s.readUntil(
    () => {
      const all = reader.peekAll();
      if (!classicNameComplete(all)) return undefined;
      reader.takeRest();
      return all.subarray(0, CLASSIC_NAME_MAX);
    },
    { ms: ctx.classicGapMs, onGap: () => reader.takeRest() },
  );
  s.conn.requestComplete();
  if (ctx.key) {
    // The classic protocol has no room for a proof.
    s.entry.name = nameBytes.toString('utf8');
    return refuse(s, 'unauthorized', 'a classic client cannot prove the secret this server requires');
  }
  let name: string;
  try {
    name = decodeClassicName(nameBytes);
  } catch (err) {
    s.entry.name = nameBytes.toString('utf8');
    return refuse(s, 'bad-request', isNetkitError(err) ? err.message : String(err));
  }
  s.entry.name = name;
  try {
    s.file = await openInJail(ctx.root, name, { refuseHardLinks: ctx.refuseHardLinks });
  } catch (err) {
    if (!isNetkitError(err)) throw err;
    return refuse(s, refusalOutcome(err), err.message);
  }
  const { handle, stat } = s.file;
  if (stat.size > BigInt(CLASSIC_MAX_SIZE)) {
    return refuse(s, 'too-large', `${stat.size} bytes does not fit the classic 8-digit size field (limit ${CLASSIC_MAX_SIZE}); use netkit file fetch`);
  }
  const size = Number(stat.size);
  s.entry.size = size;
  s.conn.enter('transfer');
  const idle = new IdleDeadline(s.conn, ctx.idleTimeoutMs);
  try {
    // One write of exactly 8 bytes, so the seed's recv(8) gets the size field and nothing else.
    await s.writeAll(encodeClassicSize(size));
    s.entry.bytes = await sendBody(s.socket, handle, 0, size, { pool: ctx.pool, onSent: (n) => (s.entry.bytes = n), onFlushed: () => idle.progress() });
    await new Promise<void>((resolve) => s.socket.write(Buffer.alloc(0), () => resolve()));
  } finally {
    idle.stop();
  }
  // The classic protocol cannot say that the file changed while it was sent; the log can.
  const change = identityChange(stat, await handle.stat({ bigint: true }));
  if (change) s.outcome('changed', `the file changed while it was sent (${change}); the classic protocol cannot tell the client`);
  else s.entry.outcome = 'ok';
  // The seed client knows the end by the byte count, but a size-0 file is only ended by our FIN.
  await s.finish();
}

export const classicProtocol: Protocol = {
  name: 'classic',
  claims: () => true,
  serve: serveClassic,
  refuse: (s, why, _message, detail) => refuse(s, why, detail),
};
