/*
 * echo-server: the floor for the benchmark's echo and latency workloads. A single-threaded
 * epoll server in C that answers any upgrade request with a fixed 101 (the load generator does
 * not check Sec-WebSocket-Accept) and echoes every data frame unmasked, all replies of one
 * read in one write. It is not a WebSocket server (no validation, no control frames, no
 * fragmentation, no closing handshake): it shows what the kernel and the loopback cost on this
 * machine, so that a Node server's figure can be read against it.
 *
 *   echo-server <port>        prints "ready <port>"; exits on stdin EOF or "exit"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
  int fd, open;
  unsigned char *in;
  size_t in_len, in_cap;
  unsigned char *out;
  size_t out_len, out_cap, out_off;
};

static const char reply[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static void grow(unsigned char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t cap2 = *cap ? *cap : 65536;
  while (cap2 < need) cap2 *= 2;
  *buf = realloc(*buf, cap2);
  if (!*buf) exit(2);
  *cap = cap2;
}

static void append(struct conn *c, const void *data, size_t len) {
  grow(&c->out, &c->out_cap, c->out_len + len);
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
}

static void drop(struct conn *c) {
  close(c->fd);
  free(c->in);
  free(c->out);
  free(c);
}

/* Frames complete in c->in: append each one unmasked to c->out; returns bytes consumed. */
static size_t echo_frames(struct conn *c) {
  size_t at = 0;
  for (;;) {
    unsigned char *p = c->in + at;
    size_t left = c->in_len - at;
    if (left < 2) break;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
      if (left < 4) break;
      len = (uint64_t)p[2] << 8 | p[3];
      h = 4;
    } else if (len == 127) {
      if (left < 10) break;
      len = 0;
      for (int k = 2; k < 10; k++) len = len << 8 | p[k];
      h = 10;
    }
    if (!(p[1] & 0x80) || left < h + 4 + len) break;
    unsigned char mask[4];
    memcpy(mask, p + h, 4);
    unsigned char header[10];
    memcpy(header, p, h);
    header[1] &= 0x7f;
    append(c, header, h);
    grow(&c->out, &c->out_cap, c->out_len + len);
    unsigned char *dst = c->out + c->out_len, *src = p + h + 4;
    for (uint64_t i = 0; i < len; i++) dst[i] = src[i] ^ mask[i & 3];
    c->out_len += len;
    at += h + 4 + len;
  }
  return at;
}

/* 1: all written; 0: the rest waits for EPOLLOUT; -1: the peer is gone (drop the connection). */
static int flush_out(struct conn *c, int ep) {
  while (c->out_off < c->out_len) {
    /* MSG_NOSIGNAL: a client that closed must not kill the server with SIGPIPE (the generator closes mid-echo). */
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      return 0;
    }
    c->out_off += n;
  }
  c->out_off = c->out_len = 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int port = atoi(argv[1]);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) return 1;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event sin = {.events = EPOLLIN, .data.ptr = (void *)1};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sin);
  printf("ready %d\n", port);
  fflush(stdout);
  static unsigned char buf[256 * 1024];
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int k = 0; k < n; k++) {
      if (events[k].data.ptr == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      if (events[k].data.ptr == (void *)1) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r <= 0 || memmem(buf, r, "exit", 4)) return 0;
        if (memmem(buf, r, "rss", 3)) {
          printf("rss 0 0 0 0 0\n");
          fflush(stdout);
        }
        continue;
      }
      struct conn *c = events[k].data.ptr;
      if (events[k].events & (EPOLLERR | EPOLLHUP)) {
        drop(c);
        continue;
      }
      if (events[k].events & EPOLLOUT) {
        int flushed = flush_out(c, ep);
        if (flushed < 0) drop(c);
        else if (flushed) {
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
        }
        continue;
      }
      ssize_t r = read(c->fd, buf, sizeof buf);
      if (r <= 0) {
        drop(c);
        continue;
      }
      grow(&c->in, &c->in_cap, c->in_len + r);
      memcpy(c->in + c->in_len, buf, r);
      c->in_len += r;
      if (!c->open) {
        unsigned char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) continue;
        size_t head = end + 4 - c->in;
        memmove(c->in, c->in + head, c->in_len - head);
        c->in_len -= head;
        c->open = 1;
        append(c, reply, sizeof reply - 1);
      }
      size_t used = echo_frames(c);
      memmove(c->in, c->in + used, c->in_len - used);
      c->in_len -= used;
      if (c->out_len && flush_out(c, ep) < 0) drop(c);
    }
  }
}
