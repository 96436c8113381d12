// A crude mDNS responder that never probes and never renames (an old device, a clone, an impostor): it announces one DNS-SD service and answers whatever asks for it.
// Run inside a test's namespace: node mdns-responder.mjs '<json options>'; prints "ready" once bound; ends on SIGTERM, on stdin's end, or after 60 s.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const o = JSON.parse(process.argv[2]);
// o: { address, instance, type: '_netkit-file._tcp', host: 'clone.local', port, txt: ['v=1', ...] | null, addresses: ['10.0.0.1'] | [] }
const typeName = `${o.type}.local`;
const fqdn = `${o.instance}.${typeName}`;
const records = [
  { name: typeName, type: 'PTR', ttl: 4500, data: fqdn },
  { name: fqdn, type: 'SRV', ttl: 120, flush: true, data: { priority: 0, weight: 0, port: o.port, target: o.host } },
  ...(o.txt ? [{ name: fqdn, type: 'TXT', ttl: 4500, flush: true, data: o.txt.map((t) => Buffer.from(t)) }] : []),
  ...o.addresses.map((a) => ({ name: o.host, type: 'A', ttl: 120, flush: true, data: a })),
];

const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const send = (answers) => {
  const buf = dnsPacket.encode({ type: 'response', flags: dnsPacket.AUTHORITATIVE_ANSWER, answers });
  socket.send(buf, 5353, '224.0.0.251');
};
socket.on('message', (msg) => {
  let packet;
  try {
    packet = dnsPacket.decode(msg);
  } catch {
    return;
  }
  if (packet.type !== 'query') return;
  const answers = records.filter((r) => (packet.questions ?? []).some((q) => q.name.toLowerCase() === r.name.toLowerCase() && (q.type === 'ANY' || q.type === r.type)));
  if (answers.length > 0) send(answers);
});
socket.bind(5353, () => {
  socket.addMembership('224.0.0.251', o.address);
  socket.setMulticastInterface(o.address);
  socket.setMulticastLoopback(false);
  send(records);
  console.log('ready');
});
const end = () => {
  socket.close();
  process.exit(0);
};
process.on('SIGTERM', end);
process.stdin.on('end', end).resume();
setTimeout(end, 60_000).unref();
