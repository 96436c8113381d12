// Asks a responder for a PTR twice in a row, as two browsers starting together would: first normally (the answer is multicast),
// then, on another socket that is in no multicast group, with the QU bit. Prints {"multicast":…, "unicast":…}: did each question get an answer?
// Run inside a test's namespace: node mdns-qu-probe.mjs '{"address":"10.0.0.9","name":"_netkit-disk._udp.local"}'. Bounded: 3 s in all.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const o = JSON.parse(process.argv[2]);
const query = (qu) => {
  const buf = dnsPacket.encode({ type: 'query', questions: [{ name: o.name, type: 'PTR' }] });
  if (qu) buf.writeUInt16BE(buf.readUInt16BE(buf.length - 2) | 0x8000, buf.length - 2); // the class of the only question
  return buf;
};
const answers = (msg) => {
  try {
    const p = dnsPacket.decode(msg);
    return p.type === 'response' && (p.answers ?? []).some((a) => a.type === 'PTR' && a.name.toLowerCase() === o.name.toLowerCase());
  } catch {
    return false;
  }
};
const result = { multicast: false, unicast: false };
const finish = () => {
  console.log(JSON.stringify(result));
  process.exit(0);
};
setTimeout(finish, 3000);

const group = dgram.createSocket({ type: 'udp4', reuseAddr: true });
group.on('message', (msg) => {
  if (result.multicast || !answers(msg)) return;
  result.multicast = true;
  // The answer was multicast just now: a second asker's question would wait a second under the rate limit,
  // unless it asks for a direct answer. This socket leaves the group first, so it hears only unicast.
  group.close(() => {
    const direct = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    direct.on('message', (m) => {
      if (answers(m)) {
        result.unicast = true;
        finish();
      }
    });
    direct.bind(5353, () => {
      direct.setMulticastInterface(o.address);
      direct.send(query(true), 5353, '224.0.0.251');
      setTimeout(finish, 800); // well before the one-second limit would let a multicast answer through
    });
  });
});
group.bind(5353, () => {
  group.addMembership('224.0.0.251', o.address);
  group.setMulticastInterface(o.address);
  group.send(query(false), 5353, '224.0.0.251');
});
