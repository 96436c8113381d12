// Recording proxies for tests: a TCP and a UDP relay on loopback that keep every byte in both directions, and can drop or inject datagrams.
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';

export interface TcpRecordingProxy {
  port: number;
  /** Bytes client -> server and server -> client, over every connection so far, in arrival order. */
  toServer: Buffer[];
  toClient: Buffer[];
  /** Every chunk in both directions in the order the proxy saw them (to count round trips). */
  events: Array<{ to: 'server' | 'client'; bytes: Buffer; connection: number }>;
  all(): Buffer;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /**
   * Called after each chunk relayed to the client with the connection's number (from 0) and the bytes it
   * has relayed to the client so far; returning true cuts that connection there (a reset to the client).
   */
  cut?: (connection: number, toClientBytes: number) => boolean;
  /** Stop reading from the server while the client is behind (as a real relay does), instead of buffering everything. */
  backpressure?: boolean;
}

/** A TCP relay from 127.0.0.1:<port> to target; every chunk in either direction is kept. */
export async function tcpRecordingProxy(targetPort: number, targetHost = '127.0.0.1', opts: TcpProxyOptions = {}): Promise<TcpRecordingProxy> {
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  const events: TcpRecordingProxy['events'] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  // Half-open both ways: a client's half-close (after its last request) is passed on, and the answers still come back.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const index = connections++;
    let relayed = 0;
    const upstream = net.connect({ port: targetPort, host: targetHost, allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d: Buffer) => {
      toServer.push(Buffer.from(d));
      events.push({ to: 'server', bytes: Buffer.from(d), connection: index });
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (client.destroyed) return;
      toClient.push(Buffer.from(d));
      events.push({ to: 'client', bytes: Buffer.from(d), connection: index });
      if (!client.write(d) && opts.backpressure) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
      relayed += d.length;
      if (opts.cut?.(index, relayed)) {
        client.resetAndDestroy();
        upstream.destroy();
      }
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    toServer,
    toClient,
    events,
    all: () => Buffer.concat([...toServer, ...toClient]),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface UdpRecordingProxy {
  port: number;
  /** Datagrams from the client, and from the server, in arrival order. */
  requests: Buffer[];
  replies: Buffer[];
  close(): Promise<void>;
}

export interface UdpProxyOptions {
  /** Return false to drop this reply instead of relaying it (index counts every reply, from 0). */
  passReply?: (reply: Buffer, index: number) => boolean;
  /** Datagrams to send to the client before relaying each request (a forger racing the server). */
  inject?: (request: Buffer) => Buffer[];
}

/**
 * A UDP relay on 127.0.0.1 in front of a server on 127.0.0.1:targetPort. One upstream socket per proxy,
 * so it suits one client at a time, which is all the tests need.
 */
export async function udpRecordingProxy(targetPort: number, opts: UdpProxyOptions = {}): Promise<UdpRecordingProxy> {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  const requests: Buffer[] = [];
  const replies: Buffer[] = [];
  let client: { port: number; address: string } | undefined;
  front.on('message', (msg, rinfo) => {
    client = { port: rinfo.port, address: rinfo.address };
    requests.push(Buffer.from(msg));
    for (const fake of opts.inject?.(msg) ?? []) front.send(fake, rinfo.port, rinfo.address);
    back.send(msg, targetPort, '127.0.0.1');
  });
  back.on('message', (msg) => {
    const index = replies.length;
    replies.push(Buffer.from(msg));
    if (client && (opts.passReply?.(msg, index) ?? true)) front.send(msg, client.port, client.address);
  });
  front.bind(0, '127.0.0.1');
  back.bind(0, '127.0.0.1');
  await Promise.all([once(front, 'listening'), once(back, 'listening')]);
  return {
    port: front.address().port,
    requests,
    replies,
    close: async () => {
      await Promise.all([new Promise<void>((r) => front.close(() => r())), new Promise<void>((r) => back.close(() => r()))]);
    },
  };
}
