/*
 * The kernel side of the interception: an nftables table and policy routing that deliver the
 * selected outbound flows of kernel sockets to the proxy (docs/interception.md "toe-proxyd").
 *
 * Why each piece:
 *   - `ip rule ... to NET ipproto P dport PORTS lookup T` with `local 0.0.0.0/0 dev lo` in table
 *     T: a connect() or sendto() needs a route before any packet exists, and a mark set by
 *     nftables would come too late for that first lookup. With a `local` route the kernel sends
 *     the flow's packets through the loopback device, so they pass prerouting, where TPROXY can
 *     take them. The route's `src 127.0.0.1` matters: without it a local route's source is the
 *     destination itself, which is no address of this host, and connect() fails (ENETUNREACH).
 *     Exclusions are earlier rules that `goto` past the inclusions: exclude wins.
 *   - nftables prerouting, `iifname lo` only (outbound flows of this host, never forwarded
 *     traffic): `tproxy` to the proxy's IP_TRANSPARENT sockets on 127.0.0.1. The destination is
 *     kept: getsockname() of the accepted socket (TCP), IP_ORIGDSTADDR (UDP).
 *   - `ip rule fwmark M lookup T` first: the proxy's own replies (SO_MARK M, sent from the
 *     original destination's address) must be routed back through loopback too, and the
 *     prerouting chain lets marked packets pass instead of intercepting them again.
 * Everything is named (table `inet NAME`, ip rule preferences PREF..PREF+199, routing table T),
 * so that removal, also after a crash, finds exactly what a proxy installed.
 */
#include "proxy/proxyd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PX_PREF_EXC 1   /* exclusions at pref + 1 .. */
#define PX_PREF_INC 100 /* inclusions at pref + 100 .. */
#define PX_PREF_END 199 /* the `nop` rule exclusions jump to */

/* A growing text buffer for the nft script and the printed commands. */
struct txt {
  char buf[32768];
  size_t len;
};

static void __attribute__((format(printf, 2, 3))) add(struct txt *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
  va_end(ap);
  if (n > 0)
    t->len += (size_t)n < sizeof(t->buf) - t->len ? (size_t)n : sizeof(t->buf) - t->len - 1;
}

static const char *proto_name(unsigned p)
{
  return p == PX_TCP ? "tcp" : "udp";
}

static void rule_addr(const struct toe_rule *r, char *out, size_t len)
{
  snprintf(out, len, "%u.%u.%u.%u/%u", r->net >> 24, (r->net >> 16) & 255, (r->net >> 8) & 255,
           r->net & 255, r->len);
}

static void rule_ports(const struct toe_rule *r, char *out, size_t len)
{
  out[0] = 0;
  if (r->port_lo == 0 && r->port_hi == 65535)
    return;
  if (r->port_lo == r->port_hi)
    snprintf(out, len, "%u", r->port_lo);
  else
    snprintf(out, len, "%u-%u", r->port_lo, r->port_hi);
}

/* One line of the kernel's rules: a rule written out for one of its protocols. */
struct rule_line {
  bool include;   /* from --include (else --exclude) */
  unsigned seq;   /* the line's number within its list, from 0 */
  unsigned proto; /* PX_TCP or PX_UDP */
  char addr[32];  /* "A.B.C.D/LEN" */
  char ports[16]; /* "N" or "N-M"; "" for any port */
};

typedef void rule_line_fn(const struct px_net *n, const struct rule_line *l, struct txt *t);

/* Calls `fn` for every rule and each of its protocols, the exclusions first: in both the nft chain
 * and the ip rules the first match wins, and an exclusion must win over an inclusion. */
static void each_rule_line(const struct px_net *n, const struct px_rules *rs, rule_line_fn *fn,
                           struct txt *t)
{
  for (int pass = 0; pass < 2; pass++) {
    const struct toe_rule *v = pass ? rs->inc : rs->exc;
    int cnt = pass ? rs->ninc : rs->nexc;
    struct rule_line l = {.include = pass == 1};
    for (int i = 0; i < cnt; i++) {
      rule_addr(&v[i], l.addr, sizeof l.addr);
      rule_ports(&v[i], l.ports, sizeof l.ports);
      for (l.proto = PX_TCP; l.proto <= PX_UDP; l.proto <<= 1) {
        if (!(v[i].kinds & l.proto))
          continue;
        fn(n, &l, t);
        l.seq++;
      }
    }
  }
}

static void nft_line(const struct px_net *n, const struct rule_line *l, struct txt *t)
{
  add(t, "    meta l4proto %s ip daddr %s", proto_name(l->proto), l->addr);
  if (l->ports[0])
    add(t, " th dport %s", l->ports);
  if (l->include)
    add(t, " tproxy ip to 127.0.0.1:%u accept\n", l->proto == PX_TCP ? n->tcp_port : n->udp_port);
  else
    add(t, " return\n");
}

/* The nftables script (for `nft -f -`). */
static void nft_script(const struct px_net *n, const struct px_rules *rs, struct txt *t)
{
  add(t, "table inet %s {\n", n->nft_name);
  add(t, "  chain prerouting {\n");
  add(t, "    type filter hook prerouting priority mangle; policy accept;\n");
  add(t, "    iifname != \"lo\" return\n");
  add(t, "    meta mark 0x%x return\n", n->fwmark);
  add(t, "    ip daddr 127.0.0.0/8 return\n");
  each_rule_line(n, rs, nft_line, t);
  add(t, "  }\n}\n");
}

static void ip_rule_line(const struct px_net *n, const struct rule_line *l, struct txt *t)
{
  uint32_t pref = n->pref + (l->include ? PX_PREF_INC : PX_PREF_EXC) + l->seq;
  add(t, "ip rule add pref %u to %s ipproto %s", pref, l->addr, proto_name(l->proto));
  if (l->ports[0])
    add(t, " dport %s", l->ports);
  if (l->include)
    add(t, " lookup %u\n", n->table);
  else
    add(t, " goto %u\n", n->pref + PX_PREF_END);
}

/* The ip commands, one argv per line in `t` (words separated by single blanks). */
static void ip_cmds(const struct px_net *n, const struct px_rules *rs, struct txt *t)
{
  add(t, "ip rule add pref %u fwmark 0x%x lookup %u\n", n->pref, n->fwmark, n->table);
  each_rule_line(n, rs, ip_rule_line, t);
  add(t, "ip rule add pref %u nop\n", n->pref + PX_PREF_END);
  add(t, "ip route add local 0.0.0.0/0 dev lo src 127.0.0.1 table %u\n", n->table);
}

void px_net_print(const struct px_net *n, const struct px_rules *rs, FILE *out)
{
  static struct txt t; /* large; dry run only, once */
  t.len = 0;
  nft_script(n, rs, &t);
  fprintf(out, "nft -f - <<'EOF'\n%sEOF\n", t.buf);
  t.len = 0;
  ip_cmds(n, rs, &t);
  fputs(t.buf, out);
}

/*
 * Runs argv[0] (found on PATH) with `input` on its stdin (NULL: /dev/null) and its stdout into
 * `out` (NULL: discarded); stderr shown only if `show_err`. Returns its exit status (>= 0), or
 * -errno if it could not be run.
 */
static int run(char *const argv[], const char *input, char *out, size_t outlen, bool show_err)
{
  int in[2] = {-1, -1}, o[2] = {-1, -1};
  if (input && pipe2(in, O_CLOEXEC) < 0)
    return -errno;
  if (out && pipe2(o, O_CLOEXEC) < 0) {
    int e = errno;
    if (input) {
      close(in[0]);
      close(in[1]);
    }
    return -e;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (in[i] >= 0)
        close(in[i]);
      if (o[i] >= 0)
        close(o[i]);
    }
    return -e;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_RDWR);
    dup2(input ? in[0] : devnull, 0);
    dup2(out ? o[1] : devnull, 1);
    if (!show_err)
      dup2(devnull, 2);
    execvp(argv[0], argv);
    fprintf(stderr, "toe-proxyd: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (input) {
    close(in[0]);
    size_t len = strlen(input), off = 0;
    while (off < len) {
      ssize_t w = write(in[1], input + off, len - off);
      if (w <= 0)
        break;
      off += (size_t)w;
    }
    close(in[1]);
  }
  if (out) {
    close(o[1]);
    size_t got = 0;
    for (;;) {
      ssize_t r = read(o[0], out + got, outlen - 1 - got);
      if (r <= 0)
        break;
      got += (size_t)r;
      if (got == outlen - 1) { /* drain the rest */
        char junk[4096];
        while (read(o[0], junk, sizeof junk) > 0) {
        }
        break;
      }
    }
    out[got] = 0;
    close(o[0]);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -errno;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
    return -ENOENT;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Splits one line of blank-separated words into argv (modifies line). */
static int split(char *line, char *argv[], int max)
{
  int n = 0;
  for (char *tok = strtok(line, " \n"); tok && n < max - 1; tok = strtok(NULL, " \n"))
    argv[n++] = tok;
  argv[n] = NULL;
  return n;
}

int px_net_remove(const struct px_net *n)
{
  int found = 0;
  char *list[] = {"nft", "list", "table", "inet", (char *)n->nft_name, NULL};
  int rc = run(list, NULL, NULL, 0, false);
  if (rc < 0)
    return rc;
  if (rc == 0) {
    char *del[] = {"nft", "delete", "table", "inet", (char *)n->nft_name, NULL};
    if (run(del, NULL, NULL, 0, true) == 0)
      found = 1;
  }
  /* Our ip rules: every preference in our range (deleted one at a time: `ip rule del pref N`
   * removes one rule). */
  static char out[65536];
  char *show[] = {"ip", "-4", "rule", "show", NULL};
  rc = run(show, NULL, out, sizeof out, false);
  if (rc < 0)
    return rc;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char *end;
    unsigned long pref = strtoul(line, &end, 10);
    if (end == line || *end != ':' || pref < n->pref || pref > n->pref + PX_PREF_END)
      continue;
    char num[16];
    snprintf(num, sizeof num, "%lu", pref);
    char *del[] = {"ip", "-4", "rule", "del", "pref", num, NULL};
    if (run(del, NULL, NULL, 0, false) == 0)
      found = 1;
  }
  char tab[16];
  snprintf(tab, sizeof tab, "%u", n->table);
  char *routes[] = {"ip", "-4", "route", "show", "table", tab, NULL};
  out[0] = 0;
  if (run(routes, NULL, out, sizeof out, false) == 0 && out[0]) {
    char *flush[] = {"ip", "-4", "route", "flush", "table", tab, NULL};
    if (run(flush, NULL, NULL, 0, false) == 0)
      found = 1;
  }
  return found;
}

int px_net_install(const struct px_net *n, const struct px_rules *rs)
{
  static struct txt t;
  t.len = 0;
  nft_script(n, rs, &t);
  char *nft[] = {"nft", "-f", "-", NULL};
  int rc = run(nft, t.buf, NULL, 0, true);
  if (rc != 0) {
    fprintf(stderr,
            "toe-proxyd: nft could not load the interception table (%s); is nftables with "
            "TPROXY (nft_tproxy) available, and are we root?\n",
            rc < 0 ? strerror(-rc) : "nft failed, see above");
    return rc < 0 ? rc : -EPERM;
  }
  t.len = 0;
  ip_cmds(n, rs, &t);
  for (char *line = t.buf, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    if (!nl)
      break;
    char one[512];
    size_t l = (size_t)(nl - line) < sizeof one - 1 ? (size_t)(nl - line) : sizeof one - 1;
    memcpy(one, line, l);
    one[l] = 0;
    char shown[512];
    memcpy(shown, one, l + 1);
    char *argv[40];
    split(one, argv, 40);
    rc = run(argv, NULL, NULL, 0, true);
    if (rc != 0) {
      fprintf(stderr, "toe-proxyd: '%s' failed (%s); removing what was installed\n", shown,
              rc < 0 ? strerror(-rc) : "see above");
      px_net_remove(n);
      return rc < 0 ? rc : -EPERM;
    }
  }
  return 0;
}
