/*
 * loadgen: a single-threaded epoll WebSocket load generator for tether's
 * benchmark suite. It is written in C so that the client is not the
 * bottleneck (a Node.js client cannot load a fast server), and it reports its
 * own CPU use so a reader can check that.
 *
 * Modes (--mode):
 *   echo       N connections, D messages in flight each, S-byte messages; rate = messages echoed / s
 *   latency    N connections, one message in flight each; round-trip percentiles
 *   handshake  C concurrent connect + upgrade + reset loops; rate = upgrades / s
 *   idle       N connections opened and held (pings answered); prints "ready", closes on stdin EOF or "close"
 *   broadcast  N subscribers and one publisher on the same path; every message the publisher
 *              sends is expected at every subscriber; rate = deliveries / s; the publisher keeps at
 *              most W messages ahead of the slowest subscriber
 *
 * Frames are masked with a fixed key and prebuilt once: masking is the same XOR work for the
 * server whatever the key, and the generator stays cheap. With --deflate FILE the payload is
 * FILE's bytes (raw DEFLATE, tail removed, made by the caller) sent with RSV1, after offering
 * "permessage-deflate"; replies are counted, not inflated.
 *
 * Output: one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum mode { ECHO, LATENCY, HANDSHAKE, IDLE, BROADCAST };
enum state { CONNECTING, UPGRADING, OPEN, DEAD };

struct conn {
  int fd;
  enum state state;
  int publisher;
  /* outgoing bytes not yet written */
  unsigned char *out;
  size_t out_len, out_cap, out_off;
  /* response head while upgrading */
  char head[1024];
  size_t head_len;
  /* frame parser: header bytes gathered, payload bytes still to skip */
  unsigned char hdr[14];
  size_t hdr_len, hdr_need;
  uint64_t skip;
  int frame_fin, frame_opcode;
  /* counters */
  long inflight;
  uint64_t received;
  int ignored; /* --ignore-first: messages set aside before counting */
  double sent_at; /* latency mode: when the message in flight was sent */
};

static struct {
  enum mode mode;
  const char *host;
  int port;
  const char *path;
  int conns, inflight, concurrency, window;
  size_t size;
  double duration, warmup;
  const char *deflate_file;
  int ignore_first; /* messages each connection receives first that are not counted (a protocol's greeting) */
} opt = {ECHO, "127.0.0.1", 0, "/echo", 1, 1, 64, 16, 32, 5.0, 1.0, NULL, 0};

/* --ports: connections spread round-robin over several servers (a cluster); the publisher uses the first. */
static int ports[16];
static int nports;

static int ep;
static struct conn *conns;
static int nconns;
static unsigned char *frame;
static size_t frame_len;
static char request[1024];
static size_t request_len;
static int measuring;
static uint64_t measured_messages, measured_bytes, errors, upgrades;
static uint64_t published;
static double start_time;
/* Broadcast flow control in O(1) per delivery (see count_delivery). */
static uint64_t *behind;
static uint64_t least;
static int subscribers_open;

/* histogram of round trips in microseconds (see hist_index) */
#define HIST 20000
static uint64_t hist[HIST];
static uint64_t hist_count;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* 0.1 us buckets below 100 us, 1 us up to 1 ms, then 1% steps */
static int hist_index(double us) {
  if (us < 0) return 0;
  if (us < 100) return (int)(us * 10);
  if (us < 1000) return 1000 + (int)(us - 100);
  int i = 1900 + (int)(log(us / 1000.0) / log(1.01));
  return i >= HIST ? HIST - 1 : i;
}

static double hist_value(int i) {
  if (i < 1000) return i / 10.0;
  if (i < 1900) return 100 + (i - 1000);
  return 1000.0 * pow(1.01, i - 1900);
}

static void record_rtt(double seconds) {
  if (!measuring) return;
  hist[hist_index(seconds * 1e6)]++;
  hist_count++;
}

static double percentile(double p) {
  uint64_t target = (uint64_t)(p * hist_count), seen = 0;
  for (int i = 0; i < HIST; i++) {
    seen += hist[i];
    if (seen > target) return hist_value(i);
  }
  return 0;
}

static void die(const char *message) {
  fprintf(stderr, "loadgen: %s (%s)\n", message, strerror(errno));
  exit(2);
}

static void out_append(struct conn *c, const unsigned char *data, size_t len) {
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len) cap *= 2;
    c->out = realloc(c->out, cap);
    if (!c->out) die("out of memory");
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
}

static void watch(struct conn *c, int writable) {
  if (opt.mode == HANDSHAKE) return; /* edge-triggered for both directions (open_conn) */
  struct epoll_event ev = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void kill_conn(struct conn *c, int count_error) {
  if (c->state == DEAD) return;
  if (count_error) errors++;
  struct linger lg = {1, 0}; /* reset: no TIME_WAIT, so handshake loops do not run out of ports */
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c->fd); /* also leaves the epoll set: the descriptor is never duplicated */
  c->state = DEAD;
}

static void flush_out(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n < 0) {
      if (errno == EAGAIN) {
        watch(c, 1);
        return;
      }
      kill_conn(c, 1);
      return;
    }
    c->out_off += n;
  }
  c->out_off = c->out_len = 0;
  watch(c, 0);
}

static void send_message(struct conn *c) {
  out_append(c, frame, frame_len);
  c->inflight++;
  if (opt.mode == LATENCY) c->sent_at = now();
}

static void open_conn(struct conn *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int one = 1;
  /* A handshake loop writes one request per connection: Nagle never delays it. */
  if (opt.mode != HANDSHAKE) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int port = nports == 0 ? opt.port : c->publisher ? ports[0] : ports[(c - conns) % nports];
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, opt.host, &addr.sin_addr);
  int publisher = c->publisher;
  memset(c, 0, sizeof *c);
  c->publisher = publisher;
  c->fd = fd;
  c->state = CONNECTING;
  c->hdr_need = 2;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) die("connect");
  /* Handshake loops watch edges for both directions from the start, so a connection costs
     no EPOLL_CTL_MOD: the generator's own system calls are what limits that workload. */
  struct epoll_event ev = {.events = opt.mode == HANDSHAKE ? EPOLLOUT | EPOLLIN | EPOLLET : EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int setup_done;
static void start_traffic(struct conn *c);

static void upgraded(struct conn *c) {
  c->state = OPEN;
  upgrades++;
  if (opt.mode == BROADCAST && !c->publisher) {
    subscribers_open++;
    behind[0]++;
  }
  if (opt.mode == HANDSHAKE) {
    if (measuring) measured_messages++;
    kill_conn(c, 0);
    open_conn(c);
    return;
  }
  /* Echo traffic starts once every connection is open (start_traffic), so that opening
     thousands of connections does not compete with the traffic of the first ones. */
  if (setup_done) start_traffic(c);
}

static void start_traffic(struct conn *c) {
  if (opt.mode == ECHO) {
    for (int i = 0; i < opt.inflight; i++) send_message(c);
  } else if (opt.mode == LATENCY) {
    send_message(c);
  }
  flush_out(c);
}

static void count_delivery(struct conn *c) {
  /* behind[k] counts subscribers that have received exactly least + k messages (k <= window + 1) */
  uint64_t k = c->received - least;
  behind[k]--;
  behind[k + 1]++;
  while (behind[0] == 0 && least < published) {
    memmove(behind, behind + 1, (size_t)(opt.window + 1) * sizeof behind[0]);
    behind[opt.window + 1] = 0;
    least++;
  }
}

static void publish_more(void) {
  struct conn *p = &conns[nconns - 1];
  if (!p->publisher || p->state != OPEN || subscribers_open < nconns - 1) return;
  while (published < least + (uint64_t)opt.window) {
    out_append(p, frame, frame_len);
    published++;
  }
  flush_out(p);
}

static void message_received(struct conn *c) {
  if (c->ignored < opt.ignore_first) {
    c->ignored++;
    return;
  }
  if (opt.mode == BROADCAST && !c->publisher) count_delivery(c);
  c->received++;
  if (measuring) {
    measured_messages++;
    measured_bytes += opt.size;
  }
  /* Replies are queued here and written once per read (on_readable), as a batch. */
  if (opt.mode == ECHO) {
    send_message(c);
  } else if (opt.mode == LATENCY) {
    record_rtt(now() - c->sent_at);
    send_message(c);
  } else if (opt.mode == BROADCAST && c->publisher) {
    if (measuring) measured_messages--; /* the publisher's own copy is not a delivery */
  }
}

/* Parses frames from the server (unmasked); counts complete data messages. */
static void consume_frames(struct conn *c, unsigned char *data, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (c->skip > 0) {
      size_t take = len - i < c->skip ? len - i : c->skip;
      c->skip -= take;
      i += take;
      if (c->skip == 0 && c->frame_fin && c->frame_opcode < 8) message_received(c);
      continue;
    }
    c->hdr[c->hdr_len++] = data[i++];
    if (c->hdr_len == 2) {
      unsigned l = c->hdr[1] & 0x7f;
      c->hdr_need = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0);
    }
    if (c->hdr_len < c->hdr_need) continue;
    uint64_t length = c->hdr[1] & 0x7f;
    if (length == 126) length = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
    else if (length == 127) {
      length = 0;
      for (int k = 2; k < 10; k++) length = (length << 8) | c->hdr[k];
    }
    c->frame_fin = (c->hdr[0] & 0x80) != 0;
    c->frame_opcode = c->hdr[0] & 0x0f;
    c->hdr_len = 0;
    c->hdr_need = 2;
    if (c->frame_opcode == 8) {
      kill_conn(c, 1); /* the server closed: unexpected in a benchmark */
      return;
    }
    if (c->frame_opcode == 9) {
      /* A ping (the server's heartbeat) is answered as a client must; the payload is not kept, so the pong
       * carries none: the servers here ping empty, and a heartbeat counts any answer. */
      static const unsigned char pong[6] = {0x8a, 0x80, 0, 0, 0, 0};
      out_append(c, pong, sizeof pong);
    }
    c->skip = length;
    if (length == 0 && c->frame_fin && c->frame_opcode < 8) message_received(c);
  }
}

static void on_readable(struct conn *c) {
  static unsigned char buf[256 * 1024];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0) {
      kill_conn(c, opt.mode != HANDSHAKE);
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN) kill_conn(c, 1);
      return;
    }
    size_t used = 0;
    if (c->state == UPGRADING) {
      while (used < (size_t)n && c->head_len < sizeof c->head - 1) {
        c->head[c->head_len++] = buf[used++];
        c->head[c->head_len] = 0;
        if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) break;
      }
      if (c->head_len < 4 || memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) != 0) {
        if (c->head_len >= sizeof c->head - 1) kill_conn(c, 1);
        continue;
      }
      if (strncmp(c->head, "HTTP/1.1 101", 12) != 0 || (opt.deflate_file && !strstr(c->head, "permessage-deflate"))) {
        fprintf(stderr, "loadgen: upgrade refused: %.*s\n", (int)strcspn(c->head, "\r"), c->head);
        kill_conn(c, 1);
        return;
      }
      upgraded(c);
      if (c->state != OPEN) return;
    }
    if (used < (size_t)n) consume_frames(c, buf + used, n - used);
    if (c->state == DEAD) return;
    if (c->out_len > c->out_off) flush_out(c);
    if (opt.mode == BROADCAST) publish_more();
  }
}

static void on_writable(struct conn *c) {
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      kill_conn(c, 1);
      return;
    }
    c->state = UPGRADING;
    out_append(c, (unsigned char *)request, request_len);
    flush_out(c);
    return;
  }
  flush_out(c);
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open --deflate file");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc(size > 0 ? size : 1);
  if (fread(data, 1, size, f) != (size_t)size) die("short read");
  fclose(f);
  *len = size;
  return data;
}

static void build_frame(void) {
  size_t len = opt.size;
  unsigned char *payload;
  int rsv1 = 0;
  if (opt.deflate_file) {
    payload = read_file(opt.deflate_file, &len);
    rsv1 = 1;
  } else {
    payload = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) payload[i] = 'a' + (i % 26);
  }
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  frame = malloc(len + 14);
  size_t h = 0;
  frame[h++] = 0x80 | (rsv1 ? 0x40 : 0) | (opt.mode == ECHO || opt.mode == LATENCY || opt.mode == BROADCAST ? 0x2 : 0x1);
  if (len < 126) frame[h++] = 0x80 | len;
  else if (len <= 0xffff) {
    frame[h++] = 0x80 | 126;
    frame[h++] = len >> 8;
    frame[h++] = len & 0xff;
  } else {
    frame[h++] = 0x80 | 127;
    for (int k = 7; k >= 0; k--) frame[h++] = (len >> (8 * k)) & 0xff;
  }
  memcpy(frame + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < len; i++) frame[h + i] = payload[i] ^ mask[i & 3];
  frame_len = h + len;
  free(payload);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --port P | --ports P1,P2,... [--host H] [--path /echo] [--mode echo|latency|handshake|idle|broadcast]\n"
          "               [--conns N] [--inflight D] [--size S] [--duration s] [--warmup s]\n"
          "               [--concurrency C] [--window W] [--deflate FILE] [--ignore-first N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--mode")) {
      opt.mode = !strcmp(v, "echo") ? ECHO : !strcmp(v, "latency") ? LATENCY : !strcmp(v, "handshake") ? HANDSHAKE
               : !strcmp(v, "idle") ? IDLE : !strcmp(v, "broadcast") ? BROADCAST : (usage(), ECHO);
    } else if (!strcmp(a, "--host")) opt.host = v;
    else if (!strcmp(a, "--port")) opt.port = atoi(v);
    else if (!strcmp(a, "--ports")) {
      for (const char *p = v; *p && nports < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p)) ports[nports++] = atoi(p);
      opt.port = ports[0];
    }
    else if (!strcmp(a, "--path")) opt.path = v;
    else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
    else if (!strcmp(a, "--inflight")) opt.inflight = atoi(v);
    else if (!strcmp(a, "--size")) opt.size = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--duration")) opt.duration = atof(v);
    else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
    else if (!strcmp(a, "--concurrency")) opt.concurrency = atoi(v);
    else if (!strcmp(a, "--window")) opt.window = atoi(v);
    else if (!strcmp(a, "--deflate")) opt.deflate_file = v;
    else if (!strcmp(a, "--ignore-first")) opt.ignore_first = atoi(v);
    else usage();
    i++;
  }
  if (!opt.port) usage();
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  request_len = snprintf(request, sizeof request,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                         opt.path, opt.host, opt.port, opt.deflate_file ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
  build_frame();

  ep = epoll_create1(0);
  nconns = opt.mode == HANDSHAKE ? opt.concurrency : opt.mode == BROADCAST ? opt.conns + 1 : opt.conns;
  conns = calloc(nconns, sizeof *conns);
  behind = calloc((size_t)opt.window + 2, sizeof *behind);
  if (opt.mode == BROADCAST) conns[nconns - 1].publisher = 1;

  /* open connections, at most 256 connecting at a time */
  int opened = 0;
  struct epoll_event events[512];
  double setup_start = now();
  int scanned_from = 0;
  while (opened < nconns || opt.mode != HANDSHAKE) {
    /* Connections open in order: only those from the first not yet open need a look. */
    while (scanned_from < opened && conns[scanned_from].state != CONNECTING && conns[scanned_from].state != UPGRADING) scanned_from++;
    int connecting = 0;
    for (int i = scanned_from; i < opened; i++)
      if (conns[i].state == CONNECTING || conns[i].state == UPGRADING) connecting++;
    while (opened < nconns && connecting < 256) {
      open_conn(&conns[opened++]);
      connecting++;
    }
    if (opened >= nconns && connecting == 0) break;
    int n = epoll_wait(ep, events, 512, 100);
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      if (events[k].events & (EPOLLERR | EPOLLHUP) && c->state == CONNECTING) {
        kill_conn(c, 1);
        continue;
      }
      if (events[k].events & EPOLLOUT) on_writable(c);
      if (c->state != DEAD && events[k].events & EPOLLIN) on_readable(c);
    }
    if (opt.mode == HANDSHAKE) break;
    if (now() - setup_start > 120) {
      fprintf(stderr, "loadgen: connections not open after 120 s\n");
      return 3;
    }
  }
  double setup_seconds = now() - setup_start;
  setup_done = 1;
  if (opt.mode == ECHO || opt.mode == LATENCY)
    for (int i = 0; i < nconns; i++)
      if (conns[i].state == OPEN) start_traffic(&conns[i]);
  int open_count = 0;
  for (int i = 0; i < nconns; i++) open_count += conns[i].state == OPEN;

  if (opt.mode == IDLE) {
    printf("{\"mode\":\"idle\",\"conns\":%d,\"open\":%d,\"errors\":%llu,\"setupSeconds\":%.3f}\n", opt.conns, open_count,
           (unsigned long long)errors, setup_seconds);
    fflush(stdout);
    /* Held until stdin closes or says anything, reading meanwhile as an idle client does: pings are answered
     * (a server's heartbeat would otherwise end the connections), anything else is read and dropped. */
    struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
    for (int held = 1; held;) {
      int n = epoll_wait(ep, events, 512, 1000);
      for (int k = 0; k < n; k++) {
        struct conn *c = events[k].data.ptr;
        if (c == NULL) {
          held = 0;
          continue;
        }
        if (events[k].events & EPOLLOUT) on_writable(c);
        if (c->state != DEAD && events[k].events & EPOLLIN) on_readable(c);
      }
    }
    for (int i = 0; i < nconns; i++) kill_conn(&conns[i], 0);
    return 0;
  }
  if (opt.mode == BROADCAST) publish_more();

  double t0 = now();
  double cpu0 = 0, wall0 = 0;
  double end = t0 + opt.warmup + opt.duration;
  while (1) {
    double t = now();
    if (!measuring && t >= t0 + opt.warmup) {
      measuring = 1;
      measured_messages = measured_bytes = 0;
      cpu0 = cpu_seconds();
      wall0 = t;
      start_time = t;
    }
    if (t >= end) break;
    int n = epoll_wait(ep, events, 512, 50);
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      if (c->state == DEAD) continue;
      if (events[k].events & (EPOLLERR | EPOLLHUP) && c->state == CONNECTING) {
        kill_conn(c, 1);
        if (opt.mode == HANDSHAKE) open_conn(c);
        continue;
      }
      if (events[k].events & EPOLLOUT) on_writable(c);
      if (c->state != DEAD && events[k].events & EPOLLIN) on_readable(c);
      if (opt.mode == HANDSHAKE && c->state == DEAD) open_conn(c);
    }
  }
  double wall = now() - wall0;
  double cpu = cpu_seconds() - cpu0;
  const char *names[] = {"echo", "latency", "handshake", "idle", "broadcast"};
  printf("{\"mode\":\"%s\",\"conns\":%d,\"inflight\":%d,\"size\":%zu,\"open\":%d,\"seconds\":%.3f,"
         "\"messages\":%llu,\"rate\":%.1f,\"bytesPerSecond\":%.1f,\"errors\":%llu,\"cpu\":%.3f",
         names[opt.mode], opt.mode == HANDSHAKE ? opt.concurrency : opt.conns, opt.inflight, opt.size, open_count, wall,
         (unsigned long long)measured_messages, measured_messages / wall, measured_bytes / wall, (unsigned long long)errors,
         cpu / wall);
  if (opt.mode == LATENCY && hist_count > 0) {
    printf(",\"p50us\":%.1f,\"p90us\":%.1f,\"p99us\":%.1f,\"p999us\":%.1f,\"samples\":%llu", percentile(0.5), percentile(0.9),
           percentile(0.99), percentile(0.999), (unsigned long long)hist_count);
  }
  printf("}\n");
  for (int i = 0; i < nconns; i++) kill_conn(&conns[i], 0);
  return 0;
}
