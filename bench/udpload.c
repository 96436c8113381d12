// udpload: a UDP load generator that keeps N requests in flight against one loopback server.
//
// Why C: the servers under test answer 30k-100k requests/s; a Node generator would saturate first and we
// would be measuring ourselves. One non-blocking socket, recvmmsg/sendmmsg batches, no threads.
//
// Requests come from a template file. If --id-len > 0, a per-request id (big-endian counter starting at
// --id-base) is written at --id-off, and a reply is valid only if it carries that id: at --reply-id-off, or
// anywhere in the reply when --reply-id-off is -1 (e.g. SNMP, where the offset depends on BER lengths).
// Without ids (the classic one-byte `y` protocol) a reply frees the oldest outstanding request (FIFO).
// A request not answered within --timeout-ms is counted lost and replaced. Only valid replies count.
//
// Output: one JSON object on stdout.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 256
#define MAX_DGRAM 65536
#define BATCH 32
#define MAX_SAMPLES 2000000

typedef struct {
  int busy;
  uint64_t id;
  double sent_at;
} slot_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parse a hex string into buf; returns length or -1.
static int parse_hex(const char *s, unsigned char *buf, int max) {
  int n = 0;
  size_t len = strlen(s);
  if (len % 2) return -1;
  for (size_t i = 0; i < len; i += 2) {
    int hi = hexval(s[i]), lo = hexval(s[i + 1]);
    if (hi < 0 || lo < 0 || n >= max) return -1;
    buf[n++] = (unsigned char)(hi * 16 + lo);
  }
  return n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void usage(void) {
  fprintf(stderr,
          "usage: udpload --port P --req FILE [--host 127.0.0.1] [--inflight 16] [--duration 3] [--warmup 0.5]\n"
          "               [--count N] [--timeout-ms 200] [--id-off O --id-len L --id-base B --reply-id-off R]\n"
          "               [--expect-prefix HEX] [--reject-prefix HEX] [--min-reply N] [--latency]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *req_path = NULL;
  int port = 0, inflight = 16, id_off = 0, id_len = 0, reply_id_off = -1, min_reply = 1, want_latency = 0;
  double duration = 3.0, warmup = 0.5, timeout_ms = 200;
  long long count_limit = 0;
  uint64_t id_base = 1;
  unsigned char expect[256], reject[256];
  int expect_len = 0, reject_len = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--latency")) { want_latency = 1; continue; }
    if (!v) usage();
    i++;
    if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--req")) req_path = v;
    else if (!strcmp(a, "--inflight")) inflight = atoi(v);
    else if (!strcmp(a, "--duration")) duration = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--count")) count_limit = atoll(v);
    else if (!strcmp(a, "--timeout-ms")) timeout_ms = atof(v);
    else if (!strcmp(a, "--id-off")) id_off = atoi(v);
    else if (!strcmp(a, "--id-len")) id_len = atoi(v);
    else if (!strcmp(a, "--id-base")) id_base = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--reply-id-off")) reply_id_off = atoi(v);
    else if (!strcmp(a, "--min-reply")) min_reply = atoi(v);
    else if (!strcmp(a, "--expect-prefix")) { if ((expect_len = parse_hex(v, expect, sizeof expect)) < 0) usage(); }
    else if (!strcmp(a, "--reject-prefix")) { if ((reject_len = parse_hex(v, reject, sizeof reject)) < 0) usage(); }
    else usage();
  }
  if (!port || !req_path || inflight < 1 || inflight > MAX_INFLIGHT || id_len < 0 || id_len > 8) usage();
  if (duration <= 0 || duration > 60) { fprintf(stderr, "udpload: --duration must be in (0, 60]\n"); return 2; }

  static unsigned char reqs[BATCH][MAX_DGRAM];
  static unsigned char reps[BATCH][MAX_DGRAM];
  FILE *f = fopen(req_path, "rb");
  if (!f) { perror("udpload: request template"); return 2; }
  size_t req_len = fread(reqs[0], 1, MAX_DGRAM, f);
  fclose(f);
  if (req_len == 0 || (id_len && (size_t)(id_off + id_len) > req_len)) { fprintf(stderr, "udpload: bad template\n"); return 2; }
  for (int b = 1; b < BATCH; b++) memcpy(reqs[b], reqs[0], req_len);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("udpload: socket"); return 1; }
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "udpload: bad host\n"); return 2; }
  if (strncmp(host, "127.", 4) != 0) { fprintf(stderr, "udpload: loopback only\n"); return 2; }
  // connect(): the kernel drops datagrams from anyone else, and send()/recv() need no address.
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("udpload: connect"); return 1; }
  fcntl(fd, F_SETFL, O_NONBLOCK);

  slot_t slots[MAX_INFLIGHT] = {{0}};
  uint64_t next_id = id_base;
  long long sent = 0, valid = 0, invalid = 0, lost = 0, send_errors = 0, refused = 0;
  long long counted_valid = 0;
  size_t bytes_in = 0, max_reply = 0;
  double *samples = want_latency ? malloc(sizeof(double) * MAX_SAMPLES) : NULL;
  size_t nsamples = 0;
  int fifo_head = 0;  // oldest slot for id-less FIFO matching

  double t0 = now_s();
  double t_measure = t0 + warmup;
  double t_end = t_measure + duration;
  double measured_start = 0;
  int measuring = warmup <= 0;
  if (measuring) measured_start = t0;

  struct mmsghdr smsg[BATCH], rmsg[BATCH];
  struct iovec siov[BATCH], riov[BATCH];
  for (int b = 0; b < BATCH; b++) {
    memset(&rmsg[b], 0, sizeof rmsg[b]);
    riov[b].iov_base = reps[b];
    riov[b].iov_len = MAX_DGRAM;
    rmsg[b].msg_hdr.msg_iov = &riov[b];
    rmsg[b].msg_hdr.msg_iovlen = 1;
  }

  int pending_send[MAX_INFLIGHT];
  int npending = 0;
  for (int s = 0; s < inflight; s++) pending_send[npending++] = s;

  for (;;) {
    double t = now_s();
    if (!measuring && t >= t_measure) { measuring = 1; measured_start = t; counted_valid = 0; nsamples = 0; }
    if (t >= t_end) break;  // --count stops earlier; --duration always bounds the run
    if (count_limit > 0 && counted_valid >= count_limit) break;
    if (t - t0 > 120) break;  // absolute bound, whatever the options say

    // Issue requests for free slots, in batches.
    while (npending > 0) {
      int n = npending < BATCH ? npending : BATCH;
      int nb = 0;
      for (int k = 0; k < n; k++) {
        int s = pending_send[npending - 1 - k];
        slots[s].busy = 1;
        slots[s].id = next_id++;
        slots[s].sent_at = t;
        if (id_len) {
          uint64_t id = slots[s].id;
          for (int j = id_len - 1; j >= 0; j--) { reqs[nb][id_off + j] = (unsigned char)(id & 0xff); id >>= 8; }
        }
        siov[nb].iov_base = reqs[nb];
        siov[nb].iov_len = req_len;
        memset(&smsg[nb], 0, sizeof smsg[nb]);
        smsg[nb].msg_hdr.msg_iov = &siov[nb];
        smsg[nb].msg_hdr.msg_iovlen = 1;
        nb++;
      }
      int r = sendmmsg(fd, smsg, nb, 0);
      if (r < 0) {
        if (errno == ECONNREFUSED) refused++;
        else send_errors++;
        r = 0;
        // Leave the slots busy: the timeout will replace them.
        npending -= nb;
        break;
      }
      sent += r;
      // Requests that were not accepted stay busy and time out.
      npending -= nb;
    }

    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, 2);
    if (pr > 0) {
      int r = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
      if (r < 0) {
        if (errno == ECONNREFUSED) refused++;
      }
      double tr = now_s();
      for (int k = 0; k < r; k++) {
        size_t len = rmsg[k].msg_len;
        unsigned char *p = reps[k];
        bytes_in += len;
        if (len > max_reply) max_reply = len;
        int ok = (int)len >= min_reply;
        if (ok && expect_len && (len < (size_t)expect_len || memcmp(p, expect, expect_len))) ok = 0;
        if (ok && reject_len && len >= (size_t)reject_len && !memcmp(p, reject, reject_len)) ok = 0;
        int s = -1;
        if (ok && id_len) {
          for (int q = 0; q < inflight && s < 0; q++) {
            if (!slots[q].busy) continue;
            unsigned char idb[8];
            uint64_t id = slots[q].id;
            for (int j = id_len - 1; j >= 0; j--) { idb[j] = (unsigned char)(id & 0xff); id >>= 8; }
            if (reply_id_off >= 0) {
              if ((size_t)(reply_id_off + id_len) <= len && !memcmp(p + reply_id_off, idb, id_len)) s = q;
            } else if (memmem(p, len, idb, id_len)) {
              s = q;
            }
          }
        } else if (ok) {
          for (int q = 0; q < inflight && s < 0; q++) {
            int c = (fifo_head + q) % inflight;
            if (slots[c].busy) s = c;
          }
        }
        if (s < 0) { invalid++; continue; }
        valid++;
        if (measuring) {
          counted_valid++;
          if (samples && nsamples < MAX_SAMPLES) samples[nsamples++] = tr - slots[s].sent_at;
        }
        slots[s].busy = 0;
        if (!id_len) fifo_head = (s + 1) % inflight;
        pending_send[npending++] = s;
      }
    }

    // Replace requests that were never answered.
    double tt = now_s();
    for (int q = 0; q < inflight; q++) {
      if (slots[q].busy && (tt - slots[q].sent_at) * 1000 > timeout_ms) {
        slots[q].busy = 0;
        lost++;
        pending_send[npending++] = q;
      }
    }
  }
  double t_stop = now_s();
  double elapsed = measuring ? t_stop - measured_start : 0;

  printf("{\"inflight\":%d,\"req_bytes\":%zu,\"sent\":%lld,\"valid_total\":%lld,\"valid\":%lld,\"invalid\":%lld,"
         "\"lost\":%lld,\"refused\":%lld,\"send_errors\":%lld,\"max_reply_bytes\":%zu,\"seconds\":%.4f,\"rate\":%.1f",
         inflight, req_len, sent, valid, counted_valid, invalid, lost, refused, send_errors, max_reply, elapsed,
         elapsed > 0 ? counted_valid / elapsed : 0.0);
  if (samples && nsamples) {
    qsort(samples, nsamples, sizeof(double), cmp_double);
    double p50 = samples[(size_t)(0.50 * (nsamples - 1))];
    double p99 = samples[(size_t)(0.99 * (nsamples - 1))];
    double mx = samples[nsamples - 1];
    printf(",\"samples\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f", nsamples, p50 * 1e6, p99 * 1e6, mx * 1e6);
  }
  printf("}\n");
  close(fd);
  free(samples);
  return 0;
}
