// Just enough SNMP v2c BER to build one GET request and check its response; the bench's snmpd peer uses it.

function len(n) {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}
const tlv = (tag, body) => Buffer.concat([Buffer.from([tag]), len(body.length), body]);

function oid(dotted) {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0] + parts[1]];
  for (const p of parts.slice(2)) {
    const bytes = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}

// UCD-SNMP-MIB dskTable row 1 (the `disk /` line in the config): path, total KiB, available KiB.
// This is the closest SNMP analogue of a netkit disk query.
export const DISK_OIDS = ['1.3.6.1.4.1.2021.9.1.2.1', '1.3.6.1.4.1.2021.9.1.6.1', '1.3.6.1.4.1.2021.9.1.7.1'];

// Request ids stay within 0x01000000..0x7fffffff so BER always encodes them in exactly 4 bytes.
export const ID_BASE = 0x01000000;

/** A GET request; returns the datagram and the offset of its 4-byte request id. */
export function getRequest(community = 'public', oids = DISK_OIDS, id = ID_BASE) {
  const idBytes = Buffer.alloc(4);
  idBytes.writeUInt32BE(id);
  const varbinds = tlv(0x30, Buffer.concat(oids.map((o) => tlv(0x30, Buffer.concat([oid(o), Buffer.from([0x05, 0x00])])))));
  const pdu = tlv(0xa0, Buffer.concat([tlv(0x02, idBytes), Buffer.from([0x02, 0x01, 0x00, 0x02, 0x01, 0x00]), varbinds]));
  const msg = tlv(0x30, Buffer.concat([Buffer.from([0x02, 0x01, 0x01]), tlv(0x04, Buffer.from(community)), pdu]));
  const idOff = msg.indexOf(Buffer.concat([Buffer.from([0x02, 0x04]), idBytes])) + 2;
  return { datagram: msg, idOff, idLen: 4 };
}

function readTlv(buf, off) {
  const tag = buf[off];
  let l = buf[off + 1];
  let p = off + 2;
  if (l & 0x80) {
    const n = l & 0x7f;
    l = 0;
    for (let i = 0; i < n; i++) l = (l << 8) | buf[p++];
  }
  return { tag, start: p, end: p + l };
}

function children(buf, t) {
  const out = [];
  for (let p = t.start; p < t.end; ) {
    const c = readTlv(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

/** Decode a GetResponse: request id, error status and each varbind's value (string, number, or exception tag). */
export function parseResponse(buf) {
  const msg = readTlv(buf, 0);
  const [, , pdu] = children(buf, msg);
  if (!pdu || pdu.tag !== 0xa2) throw new Error('not a GetResponse');
  const [rid, status, , vbs] = children(buf, pdu);
  const intOf = (t) => buf.subarray(t.start, t.end).reduce((a, b) => a * 256 + b, 0);
  const values = children(buf, vbs).map((vb) => {
    const [, v] = children(buf, vb);
    if (v.tag === 0x04) return buf.subarray(v.start, v.end).toString('utf8');
    if (v.tag === 0x02) return intOf(v);
    return { exception: v.tag };
  });
  return { requestId: intOf(rid), errorStatus: intOf(status), values };
}
