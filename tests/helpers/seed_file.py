# A stand-in for the seed's TCP file programs (TP3 questions 10 and 11), parameterised and non-interactive for tests.
#
# Faithful to the seed on the wire:
#   server (q11): reads the name with ONE recv(1024), answers str(size) as bare ASCII digits with no
#     terminator (or "-1" when os.path.isfile fails), then the file in 4096-byte pieces; it never
#     closes a connection on purpose (the seed's process dies after the first transfer, which closes it).
#   client (q10): sends the name with one send(), reads the size with ONE recv(8) and int(), then
#     recv(4096) until the byte count reaches the size or the stream ends, into OUT/NAME.
# Differences, for tests only: host, port, directory and output directory are arguments; the server
# prints "listening tcp HOST:PORT" once bound, serves --count connections (the seed manages one: it
# overwrites its listening socket with the file object), closes each connection after the last byte (what
# the seed's death does), and uses sendall() where the seed uses send() (equal on a blocking socket
# unless a signal interrupts it); the client has a timeout and exits 0 on success, 1 on "-1", 2 on a crash
# (the seed client crashes the same way: int() of a size field that swallowed file bytes).
#
#   python3 seed_file.py server [--host 127.0.0.1] [--port 0] [--dir .] [--count 1] [--linger]
#     (--linger: keep each connection open after the last byte until the client closes it)
#   python3 seed_file.py client --port PORT --name NAME [--host 127.0.0.1] [--out transferidos] [--timeout 10]
import argparse
import os
import socket
import sys


def server(args):
    tcp = socket.socket(socket.AF_INET6 if ':' in args.host else socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((args.host, args.port))
    tcp.listen(5)
    os.chdir(args.dir)
    print('listening tcp {}:{}'.format(args.host, tcp.getsockname()[1]), flush=True)
    served = 0
    try:
        while args.count == 0 or served < args.count:
            (client, addr) = tcp.accept()
            served += 1
            try:
                file = client.recv(1024)
                file = file.decode('utf-8')
                error = -1
                if os.path.isfile(file):
                    size = os.stat(file).st_size
                    client.send(str(size).encode())
                    with open(file, 'rb') as f:
                        bytes_count = f.read(4096)
                        while bytes_count:
                            client.sendall(bytes_count)
                            bytes_count = f.read(4096)
                    if args.linger:
                        # A seed that keeps serving drops the connection only at its next accept().
                        client.settimeout(30)
                        while client.recv(4096):
                            pass
                else:
                    client.send(str(error).encode('ascii'))
                    print('O arquivo não existe!', file=sys.stderr, flush=True)
            except Exception as error:
                print(error, file=sys.stderr, flush=True)
            finally:
                client.close()
    except KeyboardInterrupt:
        pass
    finally:
        tcp.close()


def loading(count, size):
    print('Baixando... {:<.2f} KB de {:<.2f} KB'.format(count / 1024, size / 1024))


def client(args):
    tcp = socket.socket(socket.AF_INET6 if ':' in args.host else socket.AF_INET, socket.SOCK_STREAM)
    tcp.settimeout(args.timeout)
    try:
        tcp.connect((args.host, args.port))
        file = args.name
        tcp.send(file.encode('utf-8'))
        msg = tcp.recv(8)
        size = int(msg.decode())
        if size >= 0:
            print('Tamanho do arquivo {}'.format(size))
            if os.path.isdir(args.out) is not True:
                os.mkdir(args.out)
            with open(os.path.join(args.out, file), 'wb') as out:
                bytes_count = tcp.recv(4096)
                count = 0
                while bytes_count:
                    out.write(bytes_count)
                    count += len(bytes_count)
                    loading(count, size)
                    if count == size:
                        break
                    bytes_count = tcp.recv(4096)
            print('Transferência Concluída!')
            sys.exit(0)
        else:
            print('Arquivo não encontrado!')
            sys.exit(1)
    except SystemExit:
        raise
    except Exception as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    finally:
        tcp.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('role', choices=['server', 'client'])
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=8881)
    p.add_argument('--dir', default='.')
    p.add_argument('--count', type=int, default=1)
    p.add_argument('--linger', action='store_true')
    p.add_argument('--name', default='arquivo.txt')
    p.add_argument('--out', default='transferidos')
    p.add_argument('--timeout', type=float, default=10.0)
    args = p.parse_args()
    if args.role == 'server':
        server(args)
    else:
        client(args)


if __name__ == '__main__':
    main()
