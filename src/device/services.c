/*
 * Built-in services: echo (RFC 862), discard (RFC 863), chargen (RFC 864), UDP variants.
 */
#include "device/services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest UDP payload over IPv4 (65535 - 20 - 8). */
#define MAX_DGRAM 65507u
/* RFC 864: "a random number (between 0 and 512) of characters" per UDP answer. */
#define CHARGEN_MAX 512u
#define CHARGEN_LINE 72u      /* characters per line, then CR LF */
#define CHARGEN_PRINTABLE 95u /* ' ' .. '~' */

struct toed_service;

/*
 * One entry per kind. A transport's handler is NULL where the kind does not use it; the TCP
 * handlers (accept, data, writable) will sit beside `udp` here.
 */
struct service_kind {
  const char *name;
  uint16_t port;
  bool answers; /* sends replies: subject to the reflection-loop check */
  /* One received datagram: `p` is the payload chain (owned by the handler). */
  void (*udp)(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
              const struct toe_sockaddr *from);
};

struct toed_service {
  const struct service_kind *kind;
  struct toed_service_spec spec;
  struct toed_services *owner;
  struct toe_sock *sock;
  bool ready;
  uint32_t chargen_line; /* first line of the next chargen answer (the pattern rotates) */
  struct toed_service_stats stats;
  uint64_t rx_drop_loop; /* datagrams from service ports not answered */
  char label[32];
};

static void echo_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                     const struct toe_sockaddr *from);
static void discard_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                        const struct toe_sockaddr *from);
static void chargen_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                        const struct toe_sockaddr *from);

static const struct service_kind kinds[TOED_SVC_KIND_COUNT] = {
    [TOED_SVC_ECHO] = {"echo", 7, true, echo_udp},
    [TOED_SVC_DISCARD] = {"discard", 9, false, discard_udp},
    [TOED_SVC_CHARGEN] = {"chargen", 19, true, chargen_udp},
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

static uint64_t rng_next(uint64_t *x)
{
  /* xorshift64*: plenty for picking answer lengths. */
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545f4914f6cdd1dull;
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

/* RFC 862: "any data received is sent back". Zero-copy when the buffer has room for headers. */
static void echo_udp(struct toed_services *s, struct toed_service *v, struct toe_pbuf *p,
                     const struct toe_sockaddr *from)
{
  size_t len = p->tot_len;
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
  size_t len = (size_t)(rng_next(&s->rng) % (CHARGEN_MAX + 1));
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

int toed_services_open(struct toed_services *s, struct toe_stack *st,
                       const struct toed_service_spec *specs, unsigned n, uint64_t seed, char *err,
                       size_t errlen)
{
  memset(s, 0, sizeof *s);
  s->st = st;
  s->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
  if (n == 0)
    return 0;
  s->svc = calloc(n, sizeof *s->svc);
  s->scratch = malloc(MAX_DGRAM);
  if (!s->svc || !s->scratch) {
    free(s->svc);
    free(s->scratch);
    s->svc = NULL;
    s->scratch = NULL;
    snprintf(err, errlen, "out of memory");
    return -TOE_ENOMEM;
  }
  for (unsigned i = 0; i < n; i++) {
    struct toed_service *v = &s->svc[i];
    v->kind = &kinds[specs[i].kind];
    v->spec = specs[i];
    v->owner = s;
    snprintf(v->label, sizeof v->label, "udp/%s:%u", v->kind->name, (unsigned)specs[i].port);
    int rc = toe_udp_open(st, v, &v->sock);
    if (rc == 0) {
      struct toe_sockaddr local = {TOE_AF_INET, specs[i].port, 0};
      rc = toe_sock_bind(st, v->sock, &local);
      if (rc != 0) {
        toe_sock_close(st, v->sock);
        v->sock = NULL;
      }
    }
    if (rc != 0) {
      snprintf(err, errlen, "cannot open service %s: %s", v->label, toe_strerror(rc));
      s->count = i;
      toed_services_close(s);
      return rc;
    }
    s->count = i + 1;
  }
  return 0;
}

void toed_services_on_event(struct toed_services *s, void *user, uint32_t events)
{
  struct toed_service *v = user;
  if (!v || !(events & (TOE_EV_READABLE | TOE_EV_ERROR)) || v->ready)
    return;
  v->ready = true;
  s->ready++;
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
  for (unsigned i = 0; i < s->count && s->ready; i++) {
    struct toed_service *v = &s->svc[i];
    if (!v->ready)
      continue;
    v->ready = false;
    s->ready--;
    unsigned n = serve_one(s, v, budget);
    total += n;
    /* Budget used up: there may be more; keep it flagged for the next round. */
    if (n == budget && toe_udp_rx_pending(v->sock, NULL) > 0 && !v->ready) {
      v->ready = true;
      s->ready++;
    }
  }
  return total;
}

void toed_services_close(struct toed_services *s)
{
  for (unsigned i = 0; i < s->count; i++)
    if (s->svc[i].sock)
      toe_sock_close(s->st, s->svc[i].sock);
  free(s->svc);
  free(s->scratch);
  s->svc = NULL;
  s->scratch = NULL;
  s->count = 0;
  s->ready = 0;
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
    int w = snprintf(buf + off, len - off, "%sudp/%s:%u", i ? "," : "",
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
    fn(arg, v->label, "rx_datagrams", v->stats.rx_datagrams);
    fn(arg, v->label, "rx_bytes", v->stats.rx_bytes);
    fn(arg, v->label, "rx_drop_loop", v->rx_drop_loop);
    fn(arg, v->label, "tx_datagrams", v->stats.tx_datagrams);
    fn(arg, v->label, "tx_bytes", v->stats.tx_bytes);
    fn(arg, v->label, "tx_errors", v->stats.tx_errors);
  }
}
