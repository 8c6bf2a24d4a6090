/*
 * Built-in services: echo (RFC 862), discard (RFC 863), chargen (RFC 864), over UDP and TCP.
 *
 * TCP data path. Every connection is served in rounds after the engine call that reported its
 * events has returned (services.h). A round moves at most TCP_CONN_BUDGET bytes, so one fast
 * stream cannot starve the other connections or the receive path, and ends in one of four ways:
 * waiting for an engine event (READABLE after -TOE_EAGAIN from recv, WRITABLE after -TOE_EAGAIN
 * from send: the engine promises that event only after a send was refused), budget used up (served
 * again next round), stalled for lack of packet buffers (retried on every run: no event says when
 * the pool refills), or gone (closed and back in the pool).
 */
#include "device/services.h"

#include "common/prng.h"
#include "toe/tcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest UDP payload over IPv4 (65535 - 20 - 8). */
#define MAX_DGRAM 65507u
/* RFC 864: "a random number (between 0 and 512) of characters" per UDP answer. */
#define CHARGEN_MAX 512u
#define CHARGEN_LINE 72u      /* characters per line, then CR LF */
#define CHARGEN_PRINTABLE 95u /* ' ' .. '~' */
/* The TCP chargen stream repeats after 95 lines (each starts one character further along). */
#define CHARGEN_PERIOD (CHARGEN_PRINTABLE * (CHARGEN_LINE + 2u))
/* TCP chargen bytes per toe_tcp_send: each send runs the engine's output once, so this is the
 * largest TSO super-segment the stream can make (one period, 7030 bytes, gave 9-11 KB frames on
 * average; issue 9). The block holds whole periods enough for a write from any offset. */
#define CHARGEN_WRITE 65536u
#define CHARGEN_BLOCK_PERIODS ((CHARGEN_WRITE + CHARGEN_PERIOD - 1u) / CHARGEN_PERIOD + 1u)
#define CHARGEN_BLOCK (CHARGEN_BLOCK_PERIODS * CHARGEN_PERIOD)

/* TCP: bytes moved (read plus written) through one connection per round before the others get
 * their turn, and through all of them per run, after which the event loop takes its turn. */
#define TCP_CONN_BUDGET (128u * 1024u)
#define TCP_RUN_BUDGET (512u * 1024u)
/* TCP: the copy chunk, and the most a connection ever holds inside toed (echo's `held`). */
#define TCP_CHUNK (16u * 1024u)
/* Connections accepted from one listener per run, and connections served per run: the event loop
 * drains the receive ring between runs, and a ring left alone for a few tens of milliseconds
 * can overflow when toed does not come back to it. */
#define ACCEPT_BUDGET 64u
#define CONNS_PER_RUN 64u

/* What an engine socket's `user` pointer leads to: a tag, so one callback serves all kinds. */
enum handle_kind {
  H_UDP = 1,
  H_LISTENER,
  H_CONN,
};

struct handle {
  uint8_t kind; /* enum handle_kind */
  struct toed_service *svc;
};

/* Which list of struct toed_services a connection is on. */
enum conn_list {
  L_NONE,
  L_READY,
  L_STALLED,
};

struct toed_conn {
  struct handle h; /* first: &conn->h is the socket's user pointer */
  struct toe_sock *sock;
  struct toed_conn *prev, *next; /* ready or stalled list */
  struct toed_conn *free_next;   /* pool free list */
  uint8_t list;                  /* enum conn_list */
  bool in_use;
  /* echo: bytes read but not yet taken by the engine (after a partial send, or the one byte read
   * to make a send attempt fail: see echo_tcp); TCP_CHUNK bytes, allocated on first need */
  uint8_t *held;
  uint32_t held_off, held_len;
  uint32_t chargen_pos; /* chargen: offset of the next byte in the stream's period */
};

/* The outcome of serving a connection once. */
enum serve_result {
  S_IDLE,    /* waits for an engine event */
  S_MORE,    /* budget used up: serve again in the next round */
  S_STALLED, /* the pool had no buffers: retry on the next run */
  S_GONE,    /* closed and returned to the pool: the pointer is dead */
};

/*
 * One entry per kind. A transport's handler is NULL where the kind does not use it.
 */
struct service_kind {
  const char *name;
  uint16_t port;
  bool answers; /* sends replies: subject to the reflection-loop check (UDP) */
  /* One received datagram: `p` is the payload chain (owned by the handler). */
  void (*udp)(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
              const struct toe_sockaddr *from);
  /* One round of a connection. */
  enum serve_result (*tcp)(struct toed_services *s, struct toed_conn *c);
};

struct toed_service {
  const struct service_kind *kind;
  struct toed_service_spec spec;
  struct toed_services *owner;
  /* UDP */
  struct handle uh;
  struct toe_sock *sock;
  bool ready;
  uint32_t chargen_line; /* first line of the next chargen answer (the pattern rotates) */
  struct toed_service_stats stats;
  uint64_t rx_drop_loop; /* datagrams from service ports not answered */
  char label[32];
  /* TCP */
  struct handle th;
  struct toe_sock *lsock; /* the listener */
  bool lready;            /* listener marked readable */
  bool accept_blocked;    /* stopped accepting: the connection pool was full */
  struct toed_service_tcp_stats tcp;
  char tlabel[32];
};

static void echo_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                     const struct toe_sockaddr *from);
static void discard_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                        const struct toe_sockaddr *from);
static void chargen_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                        const struct toe_sockaddr *from);
static enum serve_result echo_tcp(struct toed_services *s, struct toed_conn *c);
static enum serve_result discard_tcp(struct toed_services *s, struct toed_conn *c);
static enum serve_result chargen_tcp(struct toed_services *s, struct toed_conn *c);

static const struct service_kind kinds[TOED_SVC_KIND_COUNT] = {
    [TOED_SVC_ECHO] = {"echo", 7, true, echo_udp, echo_tcp},
    [TOED_SVC_DISCARD] = {"discard", 9, false, discard_udp, discard_tcp},
    [TOED_SVC_CHARGEN] = {"chargen", 19, true, chargen_udp, chargen_tcp},
};

const char *toed_service_name(enum toed_service_kind k)
{
  return (unsigned)k < TOED_SVC_KIND_COUNT ? kinds[k].name : "?";
}

uint16_t toed_service_default_port(enum toed_service_kind k)
{
  return (unsigned)k < TOED_SVC_KIND_COUNT ? kinds[k].port : 0;
}

int toed_service_lookup(const char *name)
{
  for (int i = 0; i < TOED_SVC_KIND_COUNT; i++)
    if (strcmp(name, kinds[i].name) == 0)
      return i;
  return -1;
}

const char *toed_service_names(void)
{
  return "echo, discard, chargen";
}

/*
 * A datagram from a port where another small service answers would start an endless exchange
 * between the two (echo <-> chargen, echo <-> echo; CERT CA-1996-01), so answering services
 * ignore them, as inetd does. Port 0 cannot be answered at all.
 */
static bool reflection_port(uint16_t port)
{
  switch (port) {
  case 0:
  case 7:  /* echo */
  case 13: /* daytime */
  case 17: /* qotd */
  case 19: /* chargen */
  case 37: /* time */
    return true;
  default:
    return false;
  }
}

static void note_send(struct toed_services *s, struct toed_service *v, int rc, size_t len)
{
  if (rc >= 0) {
    v->stats.tx_datagrams++;
    v->stats.tx_bytes += len;
  } else {
    v->stats.tx_errors++;
    s->last_error = rc;
    s->error_events++;
  }
}

static void echo_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                     const struct toe_sockaddr *from)
{
  size_t len = p->tot_len;
  /* A datagram copied in from the ring sits just behind its pulled headers (a few dozen bytes of
   * headroom). When its buffer has the room, moving it back by the difference is cheaper than a
   * new buffer and a copy: the answer then leaves in the buffer the question came in. */
  uint16_t room = toe_pbuf_headroom(p);
  if (room < TOE_PBUF_HEADROOM && !p->next && p->refcnt == 1 && !p->ref &&
      toe_pbuf_tailroom(p) >= TOE_PBUF_HEADROOM - room) {
    uint16_t shift = (uint16_t)(TOE_PBUF_HEADROOM - room);
    memmove(p->data + shift, p->data, p->len);
    p->data += shift;
  }
  if (toe_pbuf_headroom(p) >= TOE_PBUF_HEADROOM) {
    p->qnext = NULL;
    note_send(s, v, toe_udp_send_pbuf(s->st, v->sock, p, from), len);
    return;
  }
  /* The chain does not leave room for the headers: copy into the service scratch buffer. */
  uint8_t *buf = s->scratch;
  size_t n = 0;
  for (struct toe_pbuf *b = p; b && n + b->len <= MAX_DGRAM; b = b->next) {
    memcpy(buf + n, b->data, b->len);
    n += b->len;
  }
  toe_pbuf_free(s->st, p);
  note_send(s, v, toe_udp_sendto(s->st, v->sock, buf, n, from), n);
}

/* RFC 863: "simply throw away any data received". */
static void discard_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                        const struct toe_sockaddr *from)
{
  toe_pbuf_free(s->st, p);
}

/*
 * RFC 864: the answer holds a random number (0..512) of characters of the usual pattern: lines of
 * 72 printable ASCII characters, each line starting one character further along the 95-character
 * printable set, ended by CR LF. Consecutive answers continue the rotation where the previous one
 * stopped (by line), so a client sees the pattern advance as it would on a stream.
 */
static void chargen_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                        const struct toe_sockaddr *from)
{
  toe_pbuf_free(s->st, p);
  uint8_t buf[CHARGEN_MAX];
  size_t len = (size_t)(toe_prng_next(&s->rng) % (CHARGEN_MAX + 1));
  for (size_t i = 0; i < len; i++) {
    size_t line = i / (CHARGEN_LINE + 2), col = i % (CHARGEN_LINE + 2);
    if (col == CHARGEN_LINE)
      buf[i] = '\r';
    else if (col == CHARGEN_LINE + 1)
      buf[i] = '\n';
    else
      buf[i] = (uint8_t)(' ' + (v->chargen_line + line + col) % CHARGEN_PRINTABLE);
  }
  size_t lines = (len + CHARGEN_LINE + 1) / (CHARGEN_LINE + 2);
  v->chargen_line = (uint32_t)((v->chargen_line + lines) % CHARGEN_PRINTABLE);
  note_send(s, v, toe_udp_sendto(s->st, v->sock, buf, len, from), len);
}

/* ------------------------------------------------------------------------------------------- */
/* TCP connections: the pool and the ready/stalled lists                                         */

static void conn_unlist(struct toed_services *s, struct toed_conn *c)
{
  struct toed_conn **head, **tail;
  if (c->list == L_READY) {
    head = &s->ready_head;
    tail = &s->ready_tail;
    s->ready--;
    s->ready_conns--;
  } else if (c->list == L_STALLED) {
    head = &s->stall_head;
    tail = &s->stall_tail;
    s->stalled--;
  } else {
    return;
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    *head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    *tail = c->prev;
  c->prev = c->next = NULL;
  c->list = L_NONE;
}

/* Puts `c` at the end of list `which` (moving it from the other list if needed). */
static void conn_list(struct toed_services *s, struct toed_conn *c, enum conn_list which)
{
  if (c->list == which)
    return;
  conn_unlist(s, c);
  struct toed_conn **head = which == L_READY ? &s->ready_head : &s->stall_head;
  struct toed_conn **tail = which == L_READY ? &s->ready_tail : &s->stall_tail;
  c->prev = *tail;
  c->next = NULL;
  if (*tail)
    (*tail)->next = c;
  else
    *head = c;
  *tail = c;
  c->list = (uint8_t)which;
  if (which == L_READY) {
    s->ready++;
    s->ready_conns++;
  } else {
    s->stalled++;
  }
}

static void listener_mark_ready(struct toed_services *s, struct toed_service *v)
{
  if (v->lsock && !v->lready) {
    v->lready = true;
    s->ready++;
  }
}

/* Takes a connection from the pool (NULL when all are in use). */
static struct toed_conn *conn_get(struct toed_services *s, struct toed_service *v)
{
  struct toed_conn *c = s->conn_free;
  if (!c)
    return NULL;
  s->conn_free = c->free_next;
  c->free_next = NULL;
  c->h.kind = H_CONN;
  c->h.svc = v;
  c->in_use = true;
  return c;
}

/* Returns a connection to the pool (its socket already closed or never opened). */
static void conn_put(struct toed_services *s, struct toed_conn *c)
{
  conn_unlist(s, c);
  free(c->held);
  memset(c, 0, sizeof *c);
  c->free_next = s->conn_free;
  s->conn_free = c;
  /* A listener that stopped accepting for want of a connection can go on now. Its readiness
   * was reported once (the engine's accept-queue event is edge-triggered), so mark it here. */
  if (s->accept_blocked) {
    s->accept_blocked = false;
    for (unsigned i = 0; i < s->count; i++) {
      if (s->svc[i].accept_blocked) {
        s->svc[i].accept_blocked = false;
        listener_mark_ready(s, &s->svc[i]);
      }
    }
  }
}

/*
 * Ends a connection. rc == 0: the peer's FIN was read: close gracefully (the engine sends our FIN
 * after whatever is still queued and keeps the connection until the peer acknowledges it,
 * RFC 9293 3.10.4). Otherwise abort: after a reset or timeout the engine only frees the
 * connection; if it is somehow still synchronized, the peer gets a RST (RFC 9293 3.10.5).
 */
static enum serve_result conn_end(struct toed_services *s, struct toed_conn *c, int rc)
{
  struct toed_service *v = c->h.svc;
  if (rc == 0) {
    v->tcp.closed++;
    toe_sock_close(s->st, c->sock);
  } else {
    if (rc == -TOE_ECONNRESET)
      v->tcp.reset++;
    else
      v->tcp.aborted++;
    toe_tcp_abort(s->st, c->sock);
  }
  c->sock = NULL;
  v->tcp.active--;
  s->conns_active--;
  conn_put(s, c);
  return S_GONE;
}

/* What a refused send means for the connection. */
static enum serve_result send_refused(struct toed_services *s, struct toed_conn *c, int rc)
{
  struct toed_service *v = c->h.svc;
  if (rc == -TOE_EAGAIN) {
    /* The send buffer is full; the engine sends WRITABLE once a third of it is free. */
    v->tcp.write_waits++;
    return S_IDLE;
  }
  if (rc == -TOE_ENOBUFS || rc == 0) {
    v->tcp.nobufs_stalls++;
    return S_STALLED;
  }
  return conn_end(s, c, rc);
}

static bool conn_hold_buffer(struct toed_conn *c)
{
  if (!c->held)
    c->held = malloc(TCP_CHUNK);
  return c->held != NULL;
}

/*
 * RFC 862 over TCP: every byte received is sent back. Flow control is the engine's: bytes are read
 * only when the send buffer has room for them (toe_tcp_tx_space), so a client that does not read
 * its echoes fills our send buffer, after which we stop reading, our receive window closes and the
 * client's own sends block. Nothing accumulates in toed.
 *
 * With no room at all there is no event to wait for yet: the engine reports WRITABLE only to a
 * writer it refused. So one byte is read into `held` and offered; the refusal (-TOE_EAGAIN) asks
 * for the event, and the byte goes out first when it comes.
 */
static enum serve_result echo_tcp(struct toed_services *s, struct toed_conn *c)
{
  struct toed_service *v = c->h.svc;
  uint32_t moved = 0;
  while (moved < TCP_CONN_BUDGET) {
    if (c->held_off < c->held_len) {
      int r = toe_tcp_send(s->st, c->sock, c->held + c->held_off, c->held_len - c->held_off, 0);
      if (r <= 0)
        return send_refused(s, c, r);
      c->held_off += (uint32_t)r;
      v->tcp.tx_bytes += (uint64_t)r;
      moved += (uint32_t)r;
      if (c->held_off == c->held_len)
        c->held_off = c->held_len = 0;
      continue;
    }
    uint32_t space = toe_tcp_tx_space(c->sock);
    uint8_t *buf = s->scratch;
    uint32_t want = space < TCP_CHUNK ? space : TCP_CHUNK;
    if (space == 0) {
      if (!conn_hold_buffer(c))
        return conn_end(s, c, -TOE_ENOMEM);
      buf = c->held;
      want = 1;
    }
    int n = toe_tcp_recv(s->st, c->sock, buf, want);
    if (n == -TOE_EAGAIN)
      return S_IDLE; /* the next data brings READABLE */
    if (n <= 0)
      return conn_end(s, c, n); /* 0: the peer's FIN, all echoed; < 0: reset or error */
    v->tcp.rx_bytes += (uint64_t)n;
    moved += (uint32_t)n;
    if (buf == c->held) {
      c->held_off = 0;
      c->held_len = (uint32_t)n;
      continue;
    }
    int r = toe_tcp_send(s->st, c->sock, buf, (size_t)n, 0);
    uint32_t taken = r > 0 ? (uint32_t)r : 0;
    v->tcp.tx_bytes += taken;
    if (taken < (uint32_t)n) {
      /* The pool ran out part way (or an error: the send below reports it again). */
      if (!conn_hold_buffer(c))
        return conn_end(s, c, -TOE_ENOMEM);
      memcpy(c->held, buf + taken, (size_t)n - taken);
      c->held_off = 0;
      c->held_len = (uint32_t)n - taken;
    }
  }
  return S_MORE;
}

/* RFC 863 over TCP: read and drop until the client closes. */
static enum serve_result discard_tcp(struct toed_services *s, struct toed_conn *c)
{
  struct toed_service *v = c->h.svc;
  uint32_t moved = 0;
  while (moved < TCP_CONN_BUDGET) {
    int n = toe_tcp_recv(s->st, c->sock, s->scratch, TCP_CHUNK);
    if (n == -TOE_EAGAIN)
      return S_IDLE;
    if (n <= 0)
      return conn_end(s, c, n);
    v->tcp.rx_bytes += (uint64_t)n;
    moved += (uint32_t)n;
  }
  return S_MORE;
}

/*
 * RFC 864 over TCP: "a stream of data is sent out the connection (and any data received is thrown
 * away). This continues until the calling user terminates the connection." The stream is the
 * pattern of the UDP answers without the rotation between datagrams: 72-character lines, line i
 * starting with character i mod 95 of the printable set, CR LF after each. It is written only while
 * the send buffer has room (the engine's -TOE_EAGAIN then brings WRITABLE). The client's FIN ends
 * the connection: the pattern queued so far is followed by our FIN.
 */
static enum serve_result chargen_tcp(struct toed_services *s, struct toed_conn *c)
{
  struct toed_service *v = c->h.svc;
  uint32_t moved = 0;
  for (;;) {
    int n = toe_tcp_recv(s->st, c->sock, s->scratch, TCP_CHUNK);
    if (n == -TOE_EAGAIN)
      break;
    if (n <= 0)
      return conn_end(s, c, n);
    v->tcp.rx_bytes += (uint64_t)n;
    moved += (uint32_t)n;
    if (moved >= TCP_CONN_BUDGET)
      return S_MORE;
  }
  while (moved < TCP_CONN_BUDGET) {
    /* any offset below a period has CHARGEN_WRITE bytes of the stream after it in the block */
    /* TOE_SEND_MORE: the stream never ends, so the short tail of a write (65536 is not a
     * multiple of the MSS) waits to be filled by the next one instead of leaving as a small
     * frame of its own */
    int r = toe_tcp_send(s->st, c->sock, s->chargen_block + c->chargen_pos, CHARGEN_WRITE,
                         TOE_SEND_MORE);
    if (r <= 0)
      return send_refused(s, c, r);
    c->chargen_pos = (c->chargen_pos + (uint32_t)r) % CHARGEN_PERIOD;
    v->tcp.tx_bytes += (uint64_t)r;
    moved += (uint32_t)r;
  }
  return S_MORE;
}

/* Accepts what the listener has queued, as far as the pool and the budget allow. */
static unsigned serve_listener(struct toed_services *s, struct toed_service *v)
{
  unsigned done = 0;
  while (done < ACCEPT_BUDGET) {
    struct toed_conn *c = conn_get(s, v);
    if (!c) {
      /* The connections wait in the engine's accept queue (and beyond the backlog the engine
       * drops their handshakes, which the clients retry): resumed when one ends. */
      v->tcp.accept_deferred++;
      v->accept_blocked = true;
      s->accept_blocked = true;
      return done;
    }
    struct toe_sock *sock;
    int rc = toe_tcp_accept(s->st, v->lsock, &c->h, &sock);
    if (rc < 0) {
      conn_put(s, c);
      if (rc != -TOE_EAGAIN) {
        v->tcp.accept_errors++;
        s->last_error = rc;
        s->error_events++;
      }
      return done; /* the queue is empty: the next connection brings READABLE */
    }
    c->sock = sock;
    done++;
    v->tcp.accepted++;
    s->conns_active++;
    if (++v->tcp.active > v->tcp.active_max)
      v->tcp.active_max = v->tcp.active;
    /* chargen starts talking at once; the others may have data or a FIN queued already */
    conn_list(s, c, L_READY);
  }
  listener_mark_ready(s, v); /* budget used up: more may be queued */
  return done;
}

/* ------------------------------------------------------------------------------------------- */

static void close_all(struct toed_services *s)
{
  toed_services_stop(s);
  for (unsigned i = 0; i < s->count; i++) {
    if (s->svc[i].sock)
      toe_sock_close(s->st, s->svc[i].sock);
    if (s->svc[i].lsock)
      toe_sock_close(s->st, s->svc[i].lsock);
    s->svc[i].sock = s->svc[i].lsock = NULL;
  }
  free(s->svc);
  free(s->scratch);
  free(s->conns);
  free(s->chargen_block);
  s->svc = NULL;
  s->scratch = NULL;
  s->conns = NULL;
  s->chargen_block = NULL;
  s->conn_free = NULL;
  s->count = 0;
  s->ready = 0;
}

/* Opens the service's sockets; on failure *what says which ("udp" or "tcp"). */
static int open_one(struct toed_services *s, struct toed_service *v, const char **what)
{
  struct toe_sockaddr local = {.family = TOE_AF_INET, .port = v->spec.port, .addr = 0};
  /* With IPv6 on, the UDP socket and the TCP listener are dual-stack ones bound to [::]
   * (engine.h): they answer IPv6 clients and, through v4-mapped names, IPv4 ones, as a Linux
   * server on [::] does. */
  struct toe_sockaddr local6;
  memset(&local6, 0, sizeof local6);
  local6.family = TOE_AF_INET6;
  local6.port = v->spec.port;
  uint8_t a6[16];
  bool v6 = toe_stack_addr6(s->st, 0, a6) >= 0;
  int rc = 0;
  *what = "udp";
  if (v->spec.protos & TOED_SVC_PROTO_UDP) {
    rc = toe_udp_open(s->st, &v->uh, &v->sock);
    if (rc == 0)
      rc = toe_sock_bind(s->st, v->sock, v6 ? &local6 : &local);
    if (rc != 0)
      return rc;
  }
  if (v->spec.protos & TOED_SVC_PROTO_TCP) {
    *what = "tcp";
    rc = toe_tcp_open(s->st, &v->th, &v->lsock);
    if (rc == 0)
      rc = toe_sock_bind(s->st, v->lsock, v6 ? &local6 : &local);
    if (rc == 0)
      rc = toe_tcp_listen(s->st, v->lsock, toed_svc_backlog(s->max_conns));
  }
  return rc;
}

int toed_services_open(struct toed_services *s, struct toe_stack *st,
                       const struct toed_service_spec *specs, unsigned n, uint64_t seed,
                       uint32_t max_conns, char *err, size_t errlen)
{
  memset(s, 0, sizeof *s);
  s->st = st;
  s->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
  s->max_conns = max_conns ? max_conns : TOED_DEFAULT_MAX_CONNS;
  if (n == 0)
    return 0;
  bool tcp = false;
  for (unsigned i = 0; i < n; i++)
    tcp = tcp || (specs[i].protos & TOED_SVC_PROTO_TCP);
  s->svc = calloc(n, sizeof *s->svc);
  s->scratch = malloc(MAX_DGRAM > TCP_CHUNK ? MAX_DGRAM : TCP_CHUNK);
  if (tcp) {
    s->conns = calloc(s->max_conns, sizeof *s->conns);
    s->chargen_block = malloc(CHARGEN_BLOCK);
  }
  if (!s->svc || !s->scratch || (tcp && (!s->conns || !s->chargen_block))) {
    close_all(s);
    snprintf(err, errlen, "out of memory");
    return -TOE_ENOMEM;
  }
  if (tcp) {
    for (uint32_t i = s->max_conns; i-- > 0;) {
      s->conns[i].free_next = s->conn_free;
      s->conn_free = &s->conns[i];
    }
    for (uint32_t i = 0; i < CHARGEN_BLOCK; i++) {
      uint32_t line = i / (CHARGEN_LINE + 2), col = i % (CHARGEN_LINE + 2);
      if (col == CHARGEN_LINE)
        s->chargen_block[i] = '\r';
      else if (col == CHARGEN_LINE + 1)
        s->chargen_block[i] = '\n';
      else
        s->chargen_block[i] = (uint8_t)(' ' + (line + col) % CHARGEN_PRINTABLE);
    }
  }
  for (unsigned i = 0; i < n; i++) {
    struct toed_service *v = &s->svc[i];
    v->kind = &kinds[specs[i].kind];
    v->spec = specs[i];
    v->owner = s;
    v->uh.kind = H_UDP;
    v->uh.svc = v;
    v->th.kind = H_LISTENER;
    v->th.svc = v;
    snprintf(v->label, sizeof v->label, "udp/%s:%u", v->kind->name, (unsigned)specs[i].port);
    snprintf(v->tlabel, sizeof v->tlabel, "tcp/%s:%u", v->kind->name, (unsigned)specs[i].port);
    s->count = i + 1;
    const char *proto;
    int rc = open_one(s, v, &proto);
    if (rc != 0) {
      snprintf(err, errlen, "cannot open service %s/%s:%u: %s", proto, v->kind->name,
               (unsigned)specs[i].port, toe_strerror(rc));
      close_all(s);
      return rc;
    }
  }
  return 0;
}

void toed_services_on_event(struct toed_services *s, void *user, uint32_t events)
{
  struct handle *h = user;
  if (!h)
    return;
  switch (h->kind) {
  case H_UDP:
    if (!(events & (TOE_EV_READABLE | TOE_EV_ERROR)) || h->svc->ready)
      return;
    h->svc->ready = true;
    s->ready++;
    return;
  case H_LISTENER:
    if (events & (TOE_EV_READABLE | TOE_EV_ERROR))
      listener_mark_ready(s, h->svc);
    return;
  case H_CONN: {
    /* Every event (data, room to write, FIN, reset, the end) means: look at it again. */
    struct toed_conn *c = (struct toed_conn *)(void *)h;
    if (c->in_use && c->list != L_READY)
      conn_list(s, c, L_READY);
    return;
  }
  default:
    return;
  }
}

static unsigned serve_one(struct toed_services *s, struct toed_service *v, unsigned budget)
{
  unsigned done = 0;
  /* A pending soft error (e.g. ICMP port unreachable for an answer) is not the service's
   * problem: clear it so it does not keep the socket flagged. */
  (void)toe_sock_error(s->st, v->sock);
  while (done < budget) {
    struct toe_sockaddr from;
    struct toe_pbuf *p = toe_udp_recv_pbuf(s->st, v->sock, &from);
    if (!p)
      return done;
    done++;
    v->stats.rx_datagrams++;
    v->stats.rx_bytes += p->tot_len;
    if (v->kind->answers && reflection_port(from.port)) {
      v->rx_drop_loop++;
      toe_pbuf_free(s->st, p);
      continue;
    }
    v->kind->udp(s, v, p, &from);
  }
  return done;
}

unsigned toed_services_run(struct toed_services *s, unsigned budget)
{
  unsigned total = 0;
  for (unsigned i = 0; i < s->count; i++) {
    struct toed_service *v = &s->svc[i];
    if (!v->ready)
      continue;
    v->ready = false;
    s->ready--;
    /* The whole queue as it stands (nothing joins it while the services run: the receive path
     * waits), served in one go so its answers leave as one burst: the event loop flushes the link
     * once after this run, one TX kick for the lot. The queue limit (cfg.udp_rcvq_len) bounds it.
     */
    uint32_t queued = toe_udp_rx_pending(v->sock, NULL);
    unsigned n = serve_one(s, v, queued > budget ? queued : budget);
    total += n;
    if (n) {
      v->stats.bursts++;
      if (n > v->stats.burst_max)
        v->stats.burst_max = n;
    }
    /* Budget used up: there may be more; keep it flagged for the next round. */
    if (n == budget && toe_udp_rx_pending(v->sock, NULL) > 0 && !v->ready) {
      v->ready = true;
      s->ready++;
    }
  }
  for (unsigned i = 0; i < s->count; i++) {
    struct toed_service *v = &s->svc[i];
    if (!v->lready)
      continue;
    v->lready = false;
    s->ready--;
    total += serve_listener(s, v);
  }
  /* Stalled connections try again (the pool may have refilled as peers acknowledged). */
  while (s->stall_head)
    conn_list(s, s->stall_head, L_READY);
  /* One round: each connection ready now is served once (at most CONNS_PER_RUN of them, and
   * TCP_RUN_BUDGET bytes in all; the rest stay at the head for the next run); what becomes ready
   * meanwhile (events fired by our own sends and receives) waits at the end of the list. */
  unsigned round = s->ready_conns < CONNS_PER_RUN ? s->ready_conns : CONNS_PER_RUN;
  uint64_t run_bytes = 0;
  for (unsigned k = round; k > 0 && s->ready_head && run_bytes < TCP_RUN_BUDGET; k--) {
    struct toed_conn *c = s->ready_head;
    struct toed_service *v = c->h.svc; /* outlives c */
    uint64_t before = v->tcp.rx_bytes + v->tcp.tx_bytes;
    conn_unlist(s, c);
    enum serve_result r = v->kind->tcp(s, c);
    run_bytes += v->tcp.rx_bytes + v->tcp.tx_bytes - before;
    total++;
    if (r == S_MORE)
      conn_list(s, c, L_READY);
    else if (r == S_STALLED)
      conn_list(s, c, L_STALLED);
  }
  return total;
}

void toed_services_stop(struct toed_services *s)
{
  if (!s->conns)
    return;
  for (uint32_t i = 0; i < s->max_conns; i++) {
    struct toed_conn *c = &s->conns[i];
    if (!c->in_use)
      continue;
    struct toed_service *v = c->h.svc;
    v->tcp.stop_aborted++;
    v->tcp.active--;
    s->conns_active--;
    toe_tcp_abort(s->st, c->sock);
    c->sock = NULL;
    conn_put(s, c);
  }
}

void toed_services_close(struct toed_services *s)
{
  close_all(s);
}

static const char *proto_prefix(uint32_t protos)
{
  switch (protos & (TOED_SVC_PROTO_UDP | TOED_SVC_PROTO_TCP)) {
  case TOED_SVC_PROTO_UDP:
    return "udp";
  case TOED_SVC_PROTO_TCP:
    return "tcp";
  default:
    return "udp+tcp";
  }
}

void toed_services_describe(const struct toed_service_spec *specs, unsigned n, char *buf,
                            size_t len)
{
  size_t off = 0;
  buf[0] = 0;
  if (n == 0) {
    snprintf(buf, len, "none");
    return;
  }
  for (unsigned i = 0; i < n && off < len; i++) {
    int w =
        snprintf(buf + off, len - off, "%s%s/%s:%u", i ? "," : "", proto_prefix(specs[i].protos),
                 toed_service_name(specs[i].kind), (unsigned)specs[i].port);
    if (w < 0)
      break;
    off += (size_t)w;
  }
}

void toed_services_visit(const struct toed_services *s, toed_service_stat_fn fn, void *arg)
{
  for (unsigned i = 0; i < s->count; i++) {
    const struct toed_service *v = &s->svc[i];
    if (v->spec.protos & TOED_SVC_PROTO_UDP) {
      fn(arg, v->label, "rx_datagrams", v->stats.rx_datagrams);
      fn(arg, v->label, "rx_bytes", v->stats.rx_bytes);
      fn(arg, v->label, "rx_drop_loop", v->rx_drop_loop);
      fn(arg, v->label, "tx_datagrams", v->stats.tx_datagrams);
      fn(arg, v->label, "tx_bytes", v->stats.tx_bytes);
      fn(arg, v->label, "tx_errors", v->stats.tx_errors);
      fn(arg, v->label, "bursts", v->stats.bursts);
      fn(arg, v->label, "burst_max", v->stats.burst_max);
    }
    if (v->spec.protos & TOED_SVC_PROTO_TCP) {
      const struct toed_service_tcp_stats *t = &v->tcp;
      fn(arg, v->tlabel, "accepted", t->accepted);
      fn(arg, v->tlabel, "closed", t->closed);
      fn(arg, v->tlabel, "reset", t->reset);
      fn(arg, v->tlabel, "aborted", t->aborted);
      fn(arg, v->tlabel, "stop_aborted", t->stop_aborted);
      fn(arg, v->tlabel, "active", t->active);
      fn(arg, v->tlabel, "active_max", t->active_max);
      fn(arg, v->tlabel, "rx_bytes", t->rx_bytes);
      fn(arg, v->tlabel, "tx_bytes", t->tx_bytes);
      fn(arg, v->tlabel, "accept_deferred", t->accept_deferred);
      fn(arg, v->tlabel, "accept_errors", t->accept_errors);
      fn(arg, v->tlabel, "nobufs_stalls", t->nobufs_stalls);
      fn(arg, v->tlabel, "write_waits", t->write_waits);
    }
  }
}
