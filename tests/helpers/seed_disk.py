# A stand-in for the seed's UDP disk programs (TP3 questions 8 and 9), parameterised and non-interactive for tests.
#
# Faithful to the seed on the wire: the client sends what it is given (the seed sends what the user typed,
# normally "y") and prints the decoded reply of one recvfrom(1024); the server answers exactly "y" with
# '\nNome do Servidor: {} \nEspaço total: {}GB \nDisponivel: {}GB' (round(x, 2) of total and available
# GiB of '.', psutil.disk_usage's total and free, which shutil.disk_usage gives too) and anything else with
# 'Erro: Digite "y".'. Differences, for tests only: host and port are arguments, the server prints
# "listening udp HOST:PORT" once bound and answers until killed instead of once, and the client has a timeout.
#
#   python3 seed_disk.py server [--host 127.0.0.1] [--port 0] [--path .]
#   python3 seed_disk.py client --port PORT [--host 127.0.0.1] [--msg y] [--timeout 5]
import argparse
import shutil
import socket
import sys


def server(args):
    udp = socket.socket(socket.AF_INET6 if ':' in args.host else socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.host, args.port))
    name = socket.gethostname()
    usage = shutil.disk_usage(args.path)
    total = round(usage.total / (1024 * 1024 * 1024), 2)
    free = round(usage.free / (1024 * 1024 * 1024), 2)
    print('listening udp {}:{}'.format(args.host, udp.getsockname()[1]), flush=True)
    try:
        while True:
            (msg, client) = udp.recvfrom(1024)
            if msg.decode('utf-8', 'replace') == 'y':
                udp.sendto('\nNome do Servidor: {} \nEspaço total: {}GB \nDisponivel: {}GB'.format(name, total, free).encode('utf-8'), client)
            else:
                udp.sendto('Erro: Digite "y".'.encode('utf-8'), client)
    except KeyboardInterrupt:
        pass
    finally:
        udp.close()


def client(args):
    udp = socket.socket(socket.AF_INET6 if ':' in args.host else socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(args.timeout)
    try:
        udp.sendto(args.msg.encode('utf-8'), (args.host, args.port))
        (msg, _) = udp.recvfrom(1024)
        print(msg.decode('utf-8'))
    except Exception as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    finally:
        udp.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('role', choices=['server', 'client'])
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=9991)
    p.add_argument('--path', default='.')
    p.add_argument('--msg', default='y')
    p.add_argument('--timeout', type=float, default=5.0)
    args = p.parse_args()
    server(args) if args.role == 'server' else client(args)


if __name__ == '__main__':
    main()
