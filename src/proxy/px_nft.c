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
 *   - Only flows this host originates: a destination rule cannot tell a connect() from the reply
 *     of a kernel listener (a web server on the host answering 198.18.0.2 matches `to
 *     198.18.0.0/15` just the same), and a route lookup has no packet to look at yet. So the
 *     inclusions say `iif lo` (locally generated, never forwarded traffic), and an nftables
 *     `route` chain on output marks the reply-direction packets of connections the host did not
 *     open (`ct direction reply`: conntrack saw the peer's packet first) with M+1: the kernel
 *     routes a packet again when a route chain changes its mark, and `ip rule fwmark M+1` jumps
 *     past the inclusions, so those replies leave by the main table as if the proxy did not run.
 *     Packets that already carry a mark (the proxy's own, or another program's SO_MARK) are left
 *     alone.
 * Everything is named (table `inet NAME`, ip rule preferences PREF..PREF+PX_PREF_SPAN, routing
 * table T) and tagged: the nft table carries `comment "toe-proxyd pid N"`, the ip rules and the
 * route carry protocol PX_RT_PROTO. So removal, also after a crash, finds exactly what a proxy
 * installed and nothing of anyone else's, and a second proxy can tell a live one's rules (refuse
 * to start) from a dead one's (remove them) and from foreign ones (refuse, naming them).
 */
#include "proxy/proxyd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every rule may have two lines (tcp and udp for '*'): each list has room for all of them, so an
 * inclusion never lands among the exclusions nor one past the end. */
#define PX_PREF_REPLY 1                              /* the replies' bypass at pref + 1 */
#define PX_PREF_EXC 2                                /* exclusions at pref + 2 .. */
#define PX_PREF_INC (PX_PREF_EXC + 2 * PX_RULES_MAX) /* inclusions at pref + 130 .. */
#define PX_PREF_END (PX_PREF_INC + 2 * PX_RULES_MAX) /* the `nop` rule exclusions jump to */
#define PX_RT_PROTO 116 /* the ip rules' and the route's protocol: toe-proxyd's (rt_protos) */

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

/* The output chain's line for an inclusion: a reply of a connection this host did not open,
 * which the inclusion's ip rule would route into the proxy's table, gets the bypass mark. */
static void nft_reply_line(const struct px_net *n, const struct rule_line *l, struct txt *t)
{
  if (!l->include)
    return;
  add(t, "    ct direction reply meta l4proto %s ip daddr %s", proto_name(l->proto), l->addr);
  if (l->ports[0])
    add(t, " th dport %s", l->ports);
  add(t, " meta mark set 0x%x\n", px_net_reply_mark(n));
}

/* The nftables script (for `nft -f -`). */
static void nft_script(const struct px_net *n, const struct px_rules *rs, struct txt *t)
{
  add(t, "table inet %s {\n", n->nft_name);
  add(t, "  comment \"toe-proxyd pid %ld\"\n", (long)getpid());
  add(t, "  chain output {\n");
  add(t, "    type route hook output priority mangle; policy accept;\n");
  add(t, "    meta mark != 0 return\n");
  add(t, "    ip daddr 127.0.0.0/8 return\n");
  each_rule_line(n, rs, nft_reply_line, t);
  add(t, "  }\n");
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
    add(t, " iif lo lookup %u protocol %u\n", n->table, PX_RT_PROTO);
  else
    add(t, " goto %u protocol %u\n", n->pref + PX_PREF_END, PX_RT_PROTO);
}

/* The ip commands, one argv per line in `t` (words separated by single blanks). */
static void ip_cmds(const struct px_net *n, const struct px_rules *rs, struct txt *t)
{
  add(t, "ip rule add pref %u fwmark 0x%x lookup %u protocol %u\n", n->pref, n->fwmark, n->table,
      PX_RT_PROTO);
  add(t, "ip rule add pref %u fwmark 0x%x goto %u protocol %u\n", n->pref + PX_PREF_REPLY,
      px_net_reply_mark(n), n->pref + PX_PREF_END, PX_RT_PROTO);
  each_rule_line(n, rs, ip_rule_line, t);
  add(t, "ip rule add pref %u nop protocol %u\n", n->pref + PX_PREF_END, PX_RT_PROTO);
  add(t, "ip route add local 0.0.0.0/0 dev lo src 127.0.0.1 table %u proto %u\n", n->table,
      PX_RT_PROTO);
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

uint32_t px_net_pref_last(const struct px_net *n)
{
  return n->pref + PX_PREF_END;
}

uint32_t px_net_reply_mark(const struct px_net *n)
{
  return n->fwmark + 1;
}

/* The pid in the nft table's owner tag (0: no table; -1: a table without our tag). */
static long nft_owner(const struct px_net *n)
{
  static char out[65536];
  char *list[] = {"nft", "list", "table", "inet", (char *)n->nft_name, NULL};
  if (run(list, NULL, out, sizeof out, false) != 0)
    return 0;
  const char *tag = "comment \"toe-proxyd pid ";
  const char *c = strstr(out, tag);
  if (!c)
    return -1;
  long pid = strtol(c + strlen(tag), NULL, 10);
  return pid > 0 ? pid : -1;
}

/* Whether pid is a running toe-proxyd (not a zombie, not a reused pid). */
static bool proxyd_alive(long pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = 0;
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  if (!open || !close || close < open || close[1] != ' ' || close[2] == 'Z' || close[2] == 'X')
    return false;
  return strncmp(open + 1, "toe-proxyd", 10) == 0;
}

/* Calls fn for each `ip -4 -d rule show` line whose preference is in our range. */
static int each_rule_in_range(const struct px_net *n,
                              void (*fn)(void *, unsigned long, bool, char *), void *arg)
{
  static char out[65536];
  char *show[] = {"ip", "-4", "-d", "rule", "show", NULL};
  int rc = run(show, NULL, out, sizeof out, false);
  if (rc != 0)
    return rc < 0 ? rc : -EIO;
  char tag[32];
  snprintf(tag, sizeof tag, " proto %u", PX_RT_PROTO);
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char *end;
    unsigned long pref = strtoul(line, &end, 10);
    if (end == line || *end != ':' || pref < n->pref || pref > n->pref + PX_PREF_END)
      continue;
    char *t = strstr(line, tag);
    bool ours = t && (t[strlen(tag)] == 0 || t[strlen(tag)] == ' ');
    fn(arg, pref, ours, line);
  }
  return 0;
}

struct foreign {
  unsigned long pref;
  char line[160];
};

static void find_foreign(void *arg, unsigned long pref, bool ours, char *line)
{
  struct foreign *f = arg;
  if (!ours && !f->pref) {
    f->pref = pref;
    snprintf(f->line, sizeof f->line, "%s", line);
    for (char *c = f->line; *c; c++)
      if (*c == '\t')
        *c = ' ';
  }
}

int px_net_check(const struct px_net *n, char *err, size_t errlen)
{
  long owner = nft_owner(n);
  if (owner > 0 && owner != (long)getpid() && proxyd_alive(owner)) {
    snprintf(err, errlen,
             "toe-proxyd (pid %ld) is running here already (nft table inet %s); stop it first "
             "(kill -TERM %ld), or give this one its own --nft-table, --pref, --table, --port "
             "and --fwmark",
             owner, n->nft_name, owner);
    return -EEXIST;
  }
  if (owner < 0) {
    snprintf(err, errlen,
             "the nft table inet %s is not toe-proxyd's (it has no toe-proxyd owner tag): choose "
             "another --nft-table, or delete it if it is stale (nft delete table inet %s)",
             n->nft_name, n->nft_name);
    return -EEXIST;
  }
  struct foreign f = {0, ""};
  int rc = each_rule_in_range(n, find_foreign, &f);
  if (rc < 0) {
    snprintf(err, errlen, "cannot list the ip rules (%s): install iproute2", strerror(-rc));
    return rc;
  }
  if (f.pref) {
    snprintf(err, errlen,
             "ip rule '%s' is in toe-proxyd's preference range %u..%u but is not its own: choose "
             "another --pref, or delete that rule (ip rule del pref %lu)",
             f.line, n->pref, n->pref + PX_PREF_END, f.pref);
    return -EEXIST;
  }
  static char out[16384];
  char tab[16];
  snprintf(tab, sizeof tab, "%u", n->table);
  char *routes[] = {"ip", "-4", "route", "show", "table", tab, NULL};
  out[0] = 0;
  if (run(routes, NULL, out, sizeof out, false) == 0) {
    char tag[32];
    snprintf(tag, sizeof tag, " proto %u", PX_RT_PROTO);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
      if (!strstr(line, tag)) {
        snprintf(err, errlen,
                 "routing table %u holds a route that is not toe-proxyd's ('%s'): choose another "
                 "--table",
                 n->table, line);
        return -EEXIST;
      }
  }
  return 0;
}

struct del_ctx {
  int found;
};

static void del_ours(void *arg, unsigned long pref, bool ours, char *line)
{
  (void)line;
  struct del_ctx *d = arg;
  if (!ours)
    return; /* someone else's: never ours to delete */
  char num[16], proto[16];
  snprintf(num, sizeof num, "%lu", pref);
  snprintf(proto, sizeof proto, "%u", PX_RT_PROTO);
  char *del[] = {"ip", "-4", "rule", "del", "pref", num, "protocol", proto, NULL};
  if (run(del, NULL, NULL, 0, false) == 0)
    d->found = 1;
}

int px_net_remove(const struct px_net *n)
{
  int found = 0;
  long owner = nft_owner(n);
  /* Only our table: this process's, or a dead toe-proxyd's. */
  if (owner > 0 && (owner == (long)getpid() || !proxyd_alive(owner))) {
    char *del[] = {"nft", "delete", "table", "inet", (char *)n->nft_name, NULL};
    if (run(del, NULL, NULL, 0, true) == 0)
      found = 1;
  } else if (owner > 0) {
    return 0; /* a live proxy's: nothing here is ours */
  }
  /* Our ip rules (tagged), one at a time: `ip rule del pref N protocol P` removes one. */
  struct del_ctx d = {0};
  int rc = each_rule_in_range(n, del_ours, &d);
  if (rc < 0)
    return rc;
  found |= d.found;
  char tab[16], proto[16];
  snprintf(tab, sizeof tab, "%u", n->table);
  snprintf(proto, sizeof proto, "%u", PX_RT_PROTO);
  char *del[] = {"ip", "-4",    "route", "del",   "local", "0.0.0.0/0", "dev",
                 "lo", "table", tab,     "proto", proto,   NULL};
  if (run(del, NULL, NULL, 0, false) == 0)
    found = 1;
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
            "toe-proxyd: nft could not load the interception table (%s); are nftables with "
            "TPROXY (nft_tproxy) and conntrack (nf_conntrack) available, and are we root?\n",
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
