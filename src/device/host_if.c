/*
 * The host interface: a TAP carrying the device's MAC (host_if.h, docs/coexistence.md).
 */
#define _GNU_SOURCE

#include "device/host_if.h"

#include "common/byteorder.h"
#include "toe/steer.h"
#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, int e, const char *what, const char *name,
                const char *hint)
{
  snprintf(err, errlen, "host interface %s: %s: %s%s%s", name, what, strerror(e), hint ? " " : "",
           hint ? hint : "");
  return -e;
}

/* ioctl on an ordinary socket (interface configuration). */
static int if_ioctl(unsigned long req, struct ifreq *ifr)
{
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -errno;
  int rc = ioctl(s, req, ifr) < 0 ? -errno : 0;
  close(s);
  return rc;
}

bool toed_if_running(const char *ifname)
{
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  return if_ioctl(SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_RUNNING);
}

static void set_sin(struct sockaddr *sa, uint32_t a)
{
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(a);
  memcpy(sa, &sin, sizeof sin);
}

int toed_host_if_open(struct toed_host_if *h, const struct toed_host_if_params *p, char *err,
                      size_t errlen)
{
  memset(&h->stats, 0, sizeof h->stats);
  h->fd = -1;
  snprintf(h->name, sizeof h->name, "%s", p->name);
  if (if_nametoindex(p->name) != 0)
    return fail(err, errlen, EEXIST, "an interface of that name exists", p->name,
                "(a persistent TAP or another toed's? remove it with 'ip link del' or pick "
                "another --host-if)");
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return fail(err, errlen, errno, "cannot open /dev/net/tun", p->name,
                "(load the tun module; toed needs CAP_NET_ADMIN)");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", p->name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return fail(err, errlen, e, "cannot create the TAP", p->name, NULL);
  }
  h->fd = fd;
  snprintf(h->name, sizeof h->name, "%s", ifr.ifr_name);
  h->ifindex = (int)if_nametoindex(h->name);

  int rc;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", h->name);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  memcpy(ifr.ifr_hwaddr.sa_data, p->mac, 6);
  if ((rc = if_ioctl(SIOCSIFHWADDR, &ifr)) < 0) {
    toed_host_if_close(h);
    return fail(err, errlen, -rc, "cannot set its MAC", p->name, NULL);
  }
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", h->name);
  ifr.ifr_mtu = p->mtu;
  if ((rc = if_ioctl(SIOCSIFMTU, &ifr)) < 0) {
    toed_host_if_close(h);
    return fail(err, errlen, -rc, "cannot set its MTU", p->name, NULL);
  }
  /* Carrier before up, so the OS never sees a link the wire does not have. */
  h->carrier = true;
  toed_host_if_set_carrier(h, p->carrier);
  h->stats.carrier_changes = 0;
  if (p->addr) {
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", h->name);
    set_sin(&ifr.ifr_addr, p->addr);
    rc = if_ioctl(SIOCSIFADDR, &ifr);
    if (rc == 0) {
      uint32_t mask = p->prefix_len ? ~0u << (32 - p->prefix_len) : 0;
      set_sin(&ifr.ifr_netmask, mask);
      rc = if_ioctl(SIOCSIFNETMASK, &ifr);
    }
    if (rc < 0) {
      toed_host_if_close(h);
      return fail(err, errlen, -rc, "cannot set its address", p->name, NULL);
    }
  }
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", h->name);
  if ((rc = if_ioctl(SIOCGIFFLAGS, &ifr)) == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = if_ioctl(SIOCSIFFLAGS, &ifr);
  }
  if (rc < 0) {
    toed_host_if_close(h);
    return fail(err, errlen, -rc, "cannot bring it up", p->name, NULL);
  }
  return 0;
}

int toed_host_if_read(struct toed_host_if *h)
{
  if (h->fd < 0)
    return 0;
  ssize_t n = read(h->fd, h->buf, sizeof h->buf);
  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
  h->stats.down_frames++;
  h->stats.down_bytes += (uint64_t)n;
  return (int)n;
}

/*
 * The OS's IPv6 packets. Only headers the OS writes itself are looked at: its Neighbor
 * Advertisements and TCP/UDP segments carry no extension headers (Linux adds none to them).
 */
static bool may_send6(struct toed_host_if *h, const struct toe_stack *st, const uint8_t *l3,
                      size_t l3_len)
{
  if (l3_len < 40 + 4 || (l3[0] >> 4) != 6)
    return true;
  uint8_t nh = l3[6];
  const uint8_t *src = l3 + 8, *l4 = l3 + 40;
  if (nh == 58 && l3_len >= 40 + 24 && l4[0] == 136 && toe_steer_shared6(st, l4 + 8)) {
    /* RFC 4861 7.2.4: the engine answers every solicitation for a shared address (steering
     * gives them to both sides); the OS's advertisement would be a second answer, and its
     * unsolicited ones (7.2.6) would repeat the engine's. The same rule as ARP replies. */
    h->stats.drop_nd_adv++;
    return false;
  }
  if ((nh != TOE_IPPROTO_TCP && nh != TOE_IPPROTO_UDP) || !toe_steer_shared6(st, src))
    return true;
  if (toe_steer_owned6(st, nh, toe_load_be16(l4), l3 + 24, toe_load_be16(l4 + 2))) {
    h->stats.drop_owned_flow++;
    return false;
  }
  return true;
}

bool toed_host_if_may_send(struct toed_host_if *h, const struct toe_stack *st, uint32_t addr,
                           const uint8_t *frame, size_t len)
{
  struct toe_eth_view eth;
  if (toe_eth_parse(&eth, frame, len) < 0)
    return true; /* not ours to judge: the wire gets what the OS sent */
  const uint8_t *l3 = frame + eth.hdr_len;
  size_t l3_len = len - eth.hdr_len;
  if (eth.ethertype == TOE_ETHERTYPE_ARP) {
    struct toe_arp_view a;
    /* RFC 826: the engine answers every request for the shared address; a second answer from
     * the OS (same MAC, same address) would double every reply on the wire. The OS's requests
     * and its replies for other addresses pass. */
    if (toe_arp_parse(&a, l3, l3_len) == 0 && a.op == TOE_ARP_OP_REPLY && a.spa == addr) {
      h->stats.drop_arp_reply++;
      return false;
    }
    return true;
  }
  if (eth.ethertype == TOE_ETHERTYPE_IPV6)
    return may_send6(h, st, l3, l3_len);
  if (eth.ethertype != TOE_ETHERTYPE_IPV4 || l3_len < 20 || (l3[0] >> 4) != 4)
    return true;
  size_t hl = (size_t)(l3[0] & 0x0f) * 4u;
  uint8_t proto = l3[9];
  uint16_t frag = toe_load_be16(l3 + 6);
  if (hl < 20 || l3_len < hl + 4 || (frag & 0x1fffu) != 0 || toe_load_be32(l3 + 12) != addr ||
      (proto != TOE_IPPROTO_TCP && proto != TOE_IPPROTO_UDP))
    return true;
  const uint8_t *l4 = l3 + hl;
  if (toe_steer_owned(st, proto, toe_load_be16(l4), toe_load_be32(l3 + 16),
                      toe_load_be16(l4 + 2))) {
    /* The OS never receives segments of offloaded flows, so this is a port it should not use
     * (a shadow socket normally stops it) or an answer to something it was never shown. */
    h->stats.drop_owned_flow++;
    return false;
  }
  return true;
}

void toed_host_if_up(struct toed_host_if *h, const uint8_t *frame, size_t len)
{
  if (h->fd < 0 || write(h->fd, frame, len) != (ssize_t)len) {
    h->stats.up_drop++;
    return;
  }
  h->stats.up_frames++;
  h->stats.up_bytes += len;
}

void toed_host_if_set_carrier(struct toed_host_if *h, bool on)
{
  if (h->fd < 0 || h->carrier == on)
    return;
  int v = on ? 1 : 0;
  if (ioctl(h->fd, TUNSETCARRIER, &v) == 0) {
    h->carrier = on;
    h->stats.carrier_changes++;
  }
}

void toed_host_if_close(struct toed_host_if *h)
{
  if (h->fd >= 0)
    close(h->fd);
  h->fd = -1;
}

void toed_host_if_stats_visit(const struct toed_host_if_stats *s, toed_host_if_stat_fn fn,
                              void *arg)
{
#define TOED_HIF_VISIT_(name) fn(arg, #name, s->name);
  TOED_HOST_IF_STATS(TOED_HIF_VISIT_)
#undef TOED_HIF_VISIT_
}
