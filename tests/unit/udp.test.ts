// The UDP transport: binding (dual stack, errors) and request/reply with timeout, retries and errno translation.
import { afterEach, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { bindUdp, formatHostPort, resolveHost, udpExchange } from '../../src/transport/udp.js';

const open: Array<() => unknown> = [];
afterEach(async () => {
  while (open.length) await open.pop()!();
});

function closeLater(s: dgram.Socket): void {
  open.push(() => new Promise<void>((r) => s.close(() => r())));
}

describe('bindUdp', () => {
  test('with no host it listens on :: and answers IPv4 and IPv6 clients', async () => {
    const { socket, address } = await bindUdp({ port: 0 });
    closeLater(socket);
    socket.on('message', (m, r) => socket.send(m, r.port, r.address));
    expect(address.port).toBeGreaterThan(0);
    for (const host of ['127.0.0.1', '::1']) {
      const r = await udpExchange({ host, port: address.port, payload: Buffer.from('ping'), timeoutMs: 1000, retries: 0, onReply: (m) => ({ accept: m.toString() }) });
      expect(r.value).toBe('ping');
      expect(r.address).toBe(host);
    }
  });

  test('a port in use is ADDRESS_IN_USE with a hint', async () => {
    const a = await bindUdp({ host: '127.0.0.1', port: 0 });
    closeLater(a.socket);
    await expect(bindUdp({ host: '127.0.0.1', port: a.address.port })).rejects.toMatchObject({ code: 'ADDRESS_IN_USE', hint: expect.stringContaining('--port') });
  });

  test('an address that is not ours is UNREACHABLE; a name that does not resolve is HOST_NOT_FOUND', async () => {
    await expect(bindUdp({ host: '192.0.2.123', port: 0 })).rejects.toMatchObject({ code: 'UNREACHABLE' });
    await expect(bindUdp({ host: 'no-such-host.invalid', port: 0 })).rejects.toMatchObject({ code: 'HOST_NOT_FOUND' });
  });
});

describe('udpExchange', () => {
  test('a refused port is CONNECT_REFUSED (ICMP port unreachable on the connected socket)', async () => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    const port = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    await expect(udpExchange({ host: '127.0.0.1', port, payload: Buffer.from('x'), timeoutMs: 1000, retries: 0, onReply: () => ({ accept: 1 }) })).rejects.toMatchObject({ code: 'CONNECT_REFUSED' });
  });

  test('resend: the caller can switch to another payload mid-exchange', async () => {
    const s = dgram.createSocket('udp4');
    closeLater(s);
    const seen: string[] = [];
    s.on('message', (m, r) => {
      seen.push(m.toString());
      s.send(m.toString() === 'small' ? 'grow' : 'done', r.port, r.address);
    });
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    const r = await udpExchange<string>({
      host: '127.0.0.1',
      port: s.address().port,
      payload: Buffer.from('small'),
      timeoutMs: 1000,
      retries: 0,
      onReply: (m) => (m.toString() === 'grow' ? { resend: Buffer.from('bigger') } : { accept: m.toString() }),
    });
    expect(r.value).toBe('done');
    expect(seen).toEqual(['small', 'bigger']);
  });

  test('names resolve; unresolvable names are HOST_NOT_FOUND', async () => {
    expect((await resolveHost('localhost')).length).toBeGreaterThan(0);
    expect(await resolveHost('::1')).toEqual([{ address: '::1', family: 6 }]);
    await expect(resolveHost('no-such-host.invalid')).rejects.toMatchObject({ code: 'HOST_NOT_FOUND' });
  });

  test('formatHostPort brackets IPv6', () => {
    expect(formatHostPort('::1', 9)).toBe('[::1]:9');
    expect(formatHostPort('10.0.0.1', 9)).toBe('10.0.0.1:9');
  });
});
