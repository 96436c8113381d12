# Seed-style UDP disk server (TP3 question 9) as a benchmark peer: one socket, one loop, reply prepared in advance.
# Differences from the seed, all in its favour or needed to run it here: the reply is computed once at start
# (the seed also computes it once), it binds 127.0.0.1 on a port given (0 = any) and prints the real port,
# and it loops forever instead of answering a single request.
import os
import shutil
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(('127.0.0.1', port))
name = socket.gethostname()
usage = shutil.disk_usage('.')
total = round(usage.total / (1024 * 1024 * 1024), 2)
free = round(usage.free / (1024 * 1024 * 1024), 2)
REPLY = '\nNome do Servidor: {} \nEspaço total: {}GB \nDisponivel: {}GB'.format(name, total, free).encode('utf-8')
ERROR = 'Erro: Digite "y".'.encode('utf-8')
print('listening udp 127.0.0.1:{}'.format(server.getsockname()[1]), flush=True)
recvfrom = server.recvfrom
sendto = server.sendto
try:
    while True:
        msg, client = recvfrom(1024)
        if msg.decode('utf-8', 'replace') == 'y':
            sendto(REPLY, client)
        else:
            sendto(ERROR, client)
except KeyboardInterrupt:
    pass
finally:
    server.close()
