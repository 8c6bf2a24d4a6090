/*
 * toe-proxyd: arguments, the event loop, signals, counters (docs/interception.md "toe-proxyd").
 *
 *   toe-proxyd [--ctl PATH] --include RULE... [--exclude RULE...] [--dry-run] [options]
 *
 * Start-up: parse (bad rules or arguments: exit 2), attach to the device as origin "proxy" (none:
 * exit 1), remove what a crashed proxy left (said once), open the transparent sockets, install
 * the nftables table and ip rules, then serve until SIGTERM/SIGINT, device loss or a fatal
 * error. The rules are removed first on the way out, so new flows go back to the kernel at once;
 * then the open flows are closed gracefully. SIGUSR1 prints the counters; so does the exit.
 */
#include "proxy/proxyd.h"
#include "tools/common/toe_cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 7399
#define DEFAULT_FWMARK 0x746f65u /* "toe" */
#define DEFAULT_TABLE 7399
#define DEFAULT_PREF 10000
#define DEFAULT_NFT "toe_proxyd"

uint64_t px_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void px_log(const char *fmt, ...)
{
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "toe-proxyd: %s\n", line);
}

void px_counters_print(const struct px_counters *c, FILE *out, const char *when)
{
  fprintf(out, "toe-proxyd: counters (%s):", when);
#define PRINT_(n) fprintf(out, " %s=%llu", #n, (unsigned long long)c->n);
  PX_COUNTERS(PRINT_)
#undef PRINT_
  fprintf(out, "\n");
  fflush(out);
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: toe-proxyd [--ctl PATH] --include RULE [--include RULE...] [--exclude RULE...]\n"
          "                  [--dry-run] [--port N] [--udp-idle SECONDS] [--buffer BYTES]\n"
          "                  [--fwmark N] [--table N] [--pref N] [--nft-table NAME] [-v]\n"
          "                  [--max-flows N] [--max-flows-per-uid N]\n"
          "\n"
          "Carries the outbound TCP and UDP flows of ordinary kernel sockets that the rules\n"
          "select over the toekit device (a transparent proxy: nftables TPROXY and policy\n"
          "routing deliver them here). Exclude rules win over include rules.\n"
          "\n"
          "  RULE            tcp|udp|* : ADDR[/LEN]|* [: PORT|PORT-PORT|*]   e.g. "
          "tcp:198.18.0.0/15:80\n"
          "  --ctl PATH      the device's control socket (default: $TOE_CTL, else the only one in\n"
          "                  /run/toekit)\n"
          "  --dry-run       print the nft and ip commands that would be run, and exit\n"
          "  --port N        the proxy's TCP and UDP port on 127.0.0.1 (default %d)\n"
          "  --udp-idle S    close a UDP flow idle this long (default 60)\n"
          "  --buffer BYTES  per direction per TCP flow: most read from the application in\n"
          "                  one call, most held for it (default %u)\n"
          "  --fwmark N, --table N, --pref N, --nft-table NAME\n"
          "                  the mark of the proxy's replies (default 0x%x; N+1 marks the\n"
          "                  replies of inbound flows, which bypass the proxy), its routing table\n"
          "                  (default %d), its ip rule preferences N..N+258 (default %d), its\n"
          "                  nftables table (inet, default %s)\n"
          "  --max-flows N   flows open at once, all users together (default %u)\n"
          "  --max-flows-per-uid N\n"
          "                  flows open at once per user other than root (default %u); more\n"
          "                  are refused (TCP: reset; UDP: dropped) and counted\n"
          "  -v              one line per flow\n"
          "Signals: TERM/INT stop (the rules are removed), USR1 prints the counters.\n"
          "Exit status: 0 after a signal, 1 no device or set-up failure, 2 bad arguments.\n",
          DEFAULT_PORT, PX_DEFAULT_BUFFER, DEFAULT_FWMARK, DEFAULT_TABLE, DEFAULT_PREF, DEFAULT_NFT,
          PX_DEFAULT_MAX_FLOWS, PX_DEFAULT_MAX_FLOWS_PER_UID);
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || end == s || *end || v < min || v > max)
    return false;
  *out = (uint32_t)v;
  return true;
}

static bool nft_name_ok(const char *s)
{
  if (!*s || strlen(s) > 32)
    return false;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '_'))
      return false;
  return true;
}

static bool add_rule(struct proxyd *p, bool exclude, const char *text)
{
  char err[256];
  struct toe_rule r;
  if (px_rule_parse(text, &r, err, sizeof err) < 0) {
    fprintf(stderr, "toe-proxyd: %s\n", err);
    return false;
  }
  if ((exclude ? p->rules.nexc : p->rules.ninc) >= PX_RULES_MAX) {
    fprintf(stderr, "toe-proxyd: more than %d %s rules\n", PX_RULES_MAX,
            exclude ? "exclude" : "include");
    return false;
  }
  if (exclude)
    p->rules.exc[p->rules.nexc++] = r;
  else
    p->rules.inc[p->rules.ninc++] = r;
  return true;
}

static unsigned rule_protos(const struct px_rules *rs)
{
  unsigned m = 0;
  for (int i = 0; i < rs->ninc; i++)
    m |= rs->inc[i].kinds;
  return m;
}

/* Serves until a stop signal (0) or device loss / fatal error (1). */
static int serve(struct proxyd *p, int sfd)
{
  struct epoll_event evs[64];
  struct toe_event tev[64];
  for (;;) {
    int timeout = p->udp_head ? px_udp_expire(p, px_now_ms()) : -1;
    int resume = px_tcp_resume(p, px_now_ms()); /* a listener paused for want of descriptors */
    if (resume >= 0 && (timeout < 0 || resume < timeout))
      timeout = resume;
    int n = epoll_wait(p->epfd, evs, 64, timeout);
    if (n < 0 && errno != EINTR) {
      px_log("epoll_wait: %s", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag == PX_TAG_SIGNAL) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
          if (si.ssi_signo == SIGUSR1) {
            px_counters_print(&p->ctr, stderr, "SIGUSR1");
          } else {
            px_log("%s: stopping", strsignal((int)si.ssi_signo));
            return 0;
          }
        }
      } else if (tag == PX_TAG_TCP_LISTEN) {
        px_tcp_accept(p);
      } else if (tag == PX_TAG_UDP) {
        px_udp_receive(p);
      } else if (tag == PX_TAG_TOE) {
        /* handled below, after the kernel's events */
      } else {
        px_tcp_kernel_event(p, evs[i].data.ptr, evs[i].events);
      }
    }
    /* The device: whatever is ready now (level-triggered; cheap when nothing is). */
    for (;;) {
      int m = toe_poll(p->dev, tev, 64, 0);
      if (m <= 0)
        break;
      for (int i = 0; i < m; i++) {
        if (tev[i].sd == TOE_SD_DEVICE) {
          if (tev[i].events & TOE_POLLHUP) {
            px_log("the device is gone (%s): stopping", toe_strerror(toe_dev_status(p->dev)));
            return 1;
          }
          continue;
        }
        enum px_kind *k = tev[i].udata;
        if (!k)
          continue;
        if (*k == PX_K_TCP)
          px_tcp_device_event(p, (struct px_tcp_flow *)k, tev[i].events);
        else
          px_udp_device_event(p, (struct px_udp_flow *)k, tev[i].events);
      }
      if (m < 64)
        break;
    }
  }
}

int main(int argc, char **argv)
{
  struct proxyd px;
  struct proxyd *p = &px;
  memset(p, 0, sizeof *p);
  p->tcp_lfd = p->udp_fd = p->epfd = -1;
  p->udp_idle_ms = 60000;
  p->bufsize = PX_DEFAULT_BUFFER;
  p->net.fwmark = DEFAULT_FWMARK;
  p->net.table = DEFAULT_TABLE;
  p->net.pref = DEFAULT_PREF;
  p->net.tcp_port = p->net.udp_port = DEFAULT_PORT;
  p->net.nft_name = DEFAULT_NFT;
  p->lim.max_total = PX_DEFAULT_MAX_FLOWS;
  p->lim.max_per_uid = PX_DEFAULT_MAX_FLOWS_PER_UID;
  const char *ctl = NULL;
  bool dry = false;
  enum {
    O_CTL = 256,
    O_INC,
    O_EXC,
    O_DRY,
    O_PORT,
    O_IDLE,
    O_BUF,
    O_MARK,
    O_TABLE,
    O_PREF,
    O_NFT,
    O_MAXF,
    O_MAXU
  };
  static const struct option opts[] = {{"ctl", required_argument, NULL, O_CTL},
                                       {"include", required_argument, NULL, O_INC},
                                       {"exclude", required_argument, NULL, O_EXC},
                                       {"dry-run", no_argument, NULL, O_DRY},
                                       {"port", required_argument, NULL, O_PORT},
                                       {"udp-idle", required_argument, NULL, O_IDLE},
                                       {"buffer", required_argument, NULL, O_BUF},
                                       {"fwmark", required_argument, NULL, O_MARK},
                                       {"table", required_argument, NULL, O_TABLE},
                                       {"pref", required_argument, NULL, O_PREF},
                                       {"nft-table", required_argument, NULL, O_NFT},
                                       {"max-flows", required_argument, NULL, O_MAXF},
                                       {"max-flows-per-uid", required_argument, NULL, O_MAXU},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {NULL, 0, NULL, 0}};
  int c;
  uint32_t v;
  opterr = 0; /* one line of our own (toe_cli_usage_error) */
  while ((c = getopt_long(argc, argv, "hvV", opts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case O_CTL:
      ctl = optarg;
      break;
    case O_INC:
    case O_EXC:
      if (!add_rule(p, c == O_EXC, optarg))
        return 2;
      break;
    case O_DRY:
      dry = true;
      break;
    case O_PORT:
      ok = parse_u32(optarg, 1, 65535, &v);
      p->net.tcp_port = p->net.udp_port = (uint16_t)v;
      break;
    case O_IDLE:
      ok = parse_u32(optarg, 1, 86400, &v);
      p->udp_idle_ms = (int)v * 1000;
      break;
    case O_BUF:
      ok = parse_u32(optarg, 4096, 16u << 20, &v);
      p->bufsize = v;
      break;
    case O_MARK:
      ok = parse_u32(optarg, 1, UINT32_MAX - 1, &p->net.fwmark); /* N+1: the bypass */
      break;
    case O_TABLE:
      ok = parse_u32(optarg, 1, 0x7fffffff, &p->net.table) && p->net.table != 253 &&
           p->net.table != 254 && p->net.table != 255; /* default, main, local */
      break;
    case O_PREF:
      ok = parse_u32(optarg, 1, 32000, &p->net.pref);
      break;
    case O_NFT:
      ok = nft_name_ok(optarg);
      p->net.nft_name = optarg;
      break;
    case O_MAXF:
      ok = parse_u32(optarg, 1, 1u << 20, &p->lim.max_total);
      break;
    case O_MAXU:
      ok = parse_u32(optarg, 1, 1u << 20, &p->lim.max_per_uid);
      break;
    case 'v':
      p->verbose = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      return toe_cli_version("toe-proxyd", toe_version());
    default:
      if (optopt && optopt < O_CTL && optopt != 'h' && optopt != 'v' && optopt != 'V')
        return toe_cli_usage_error("toe-proxyd", "unknown option -%c", optopt);
      if (optopt >= O_CTL)
        return toe_cli_usage_error("toe-proxyd", "%s needs a value", argv[optind - 1]);
      return toe_cli_usage_error("toe-proxyd", "unknown option %s", argv[optind - 1]);
    }
    if (!ok) {
      fprintf(stderr, "toe-proxyd: bad value '%s' for --%s (see --help)\n", optarg,
              opts[c - O_CTL].name);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "toe-proxyd: unexpected argument '%s' (rules go after --include)\n",
            argv[optind]);
    return 2;
  }
  if (p->rules.ninc == 0) {
    fprintf(stderr, "toe-proxyd: no --include rule: nothing to intercept (see --help)\n");
    return 2;
  }
  if (dry) {
    px_net_print(&p->net, &p->rules, stdout);
    return 0;
  }

  signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGUSR1);
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);

  struct toe_attach_opts ao;
  toe_attach_opts_init(&ao);
  ao.origin = TOE_ORIGIN_PROXY;
  ao.comm = "toe-proxyd";
  /* Large buffers: a send run (TOE_SEND_RUN_MAX buffers) is then 512 KiB and a received piece up
   * to 64 KiB, so one read() or sendmsg() on the local leg moves that much (the device clamps
   * what it cannot give). 1024 of them: a 64 MiB region, half of it for receiving. */
  ao.buf_size = PX_DEV_BUF_SIZE;
  ao.buf_count = PX_DEV_BUF_COUNT;
  int rc = toe_attach(ctl, &ao, &p->dev);
  if (rc < 0) {
    char def[256] = "(none found)";
    if (!ctl && toe_ctl_default(def, sizeof def) == 0)
      ctl = def;
    fprintf(stderr,
            "toe-proxyd: no device at %s (%s): start toed, or name its control socket with "
            "--ctl\n",
            ctl ? ctl : def, toe_strerror(rc));
    return 1;
  }
  int status = 1;
  char why[512];
  rc = px_net_check(&p->net, why, sizeof why);
  if (rc == -EEXIST) {
    px_log("%s", why);
    goto out_detach;
  }
  int found = px_net_remove(&p->net);
  if (found < 0) {
    fprintf(stderr, "toe-proxyd: cannot run nft or ip (%s): install nftables and iproute2\n",
            strerror(-found));
    goto out_detach;
  }
  if (found > 0)
    px_log("removed the interception rules an earlier toe-proxyd left (it did not exit cleanly)");

  unsigned protos = rule_protos(&p->rules);
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0 || sfd < 0) {
    px_log("epoll/signalfd: %s", strerror(errno));
    goto out_detach;
  }
  if ((protos & PX_TCP) && (rc = px_tcp_open_listener(p)) < 0) {
    px_log("cannot open the transparent TCP socket on 127.0.0.1:%u: %s (needs CAP_NET_ADMIN)",
           p->net.tcp_port, strerror(-rc));
    goto out_detach;
  }
  if ((protos & PX_UDP) && (rc = px_udp_open(p)) < 0) {
    px_log("cannot open the transparent UDP socket on 127.0.0.1:%u: %s (needs CAP_NET_ADMIN)",
           p->net.udp_port, strerror(-rc));
    goto out_detach;
  }
  struct epoll_event ev = {.events = EPOLLIN};
  ev.data.u64 = PX_TAG_SIGNAL;
  epoll_ctl(p->epfd, EPOLL_CTL_ADD, sfd, &ev);
  ev.data.u64 = PX_TAG_TOE;
  epoll_ctl(p->epfd, EPOLL_CTL_ADD, toe_event_fd(p->dev), &ev);
  if (p->tcp_lfd >= 0) {
    ev.data.u64 = PX_TAG_TCP_LISTEN;
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->tcp_lfd, &ev);
  }
  if (p->udp_fd >= 0) {
    ev.data.u64 = PX_TAG_UDP;
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->udp_fd, &ev);
  }
  if (px_net_install(&p->net, &p->rules) < 0)
    goto out_detach;
  px_log("intercepting: %d include and %d exclude rules, port %u, nft table inet %s, ip rules "
         "%u..%u, routing table %u",
         p->rules.ninc, p->rules.nexc, p->net.tcp_port, p->net.nft_name, p->net.pref,
         px_net_pref_last(&p->net), p->net.table);

  status = serve(p, sfd) == 0 ? 0 : 1;
  /* Rules first: from now on new flows go to the kernel as if we had never been here. */
  px_net_remove(&p->net);
  px_tcp_close_all(p);
  px_udp_close_all(p);
  px_counters_print(&p->ctr, stderr, "exit");
  px_log("rules removed");
out_detach:
  if (p->tcp_lfd >= 0)
    close(p->tcp_lfd);
  if (p->udp_fd >= 0)
    close(p->udp_fd);
  if (p->epfd >= 0)
    close(p->epfd);
  if (sfd >= 0)
    close(sfd);
  toe_detach(p->dev, 2000);
  return status;
}
