// The part of dns-packet (5.6.1, no published types) that the mDNS adapter uses.
declare module 'dns-packet' {
  const dnsPacket: {
    encode(packet: object): Buffer;
    question: { encodingLength(q: { name: string }): number };
  };
  export default dnsPacket;
}
