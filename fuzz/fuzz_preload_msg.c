/*
 * The preload's copies between an application's message structures and libtoe (issue 12, item
 * 14): the iovec total, gather and scatter of readv/writev/sendmsg/recvmsg and the control
 * messages built into a msghdr (src/preload/pl_msg.c), and the sockaddr conversions every
 * address an application passes goes through on its way to the device and back
 * (toe_sa_in/toe_sa_out in src/host/toe_socket.c). Every buffer is allocated at its exact size,
 * so that AddressSanitizer sees a byte read or written past what the application gave.
 *
 * Input: records, a tag byte and its arguments:
 *   tag % 3 == 0: a vector: u8 n (n % 40 entries), per entry u16 length (little endian); with
 *      tag bit 7 the lengths are u64 and only the total is checked (an application's lengths
 *      may add up to more than SSIZE_MAX); then u16 cap; the bytes gathered come from the input.
 *      Checked: the total is the sum, or -EINVAL past SSIZE_MAX or IOV_MAX; gather copies
 *      min(total, cap) bytes in order and nothing past cap; scatter of those bytes fills the
 *      entries in order, stops at len, writes nothing past an entry, and gives back what
 *      gather took.
 *   tag % 3 == 1: control messages: u16 buffer size (% 512), u8 misalignment (% 8), u8 count
 *      (% 8), per message u8 level, u8 type, u16 length (% 300) and its data from the input.
 *      Checked: nothing is written outside the buffer; MSG_CTRUNC is set exactly when a message
 *      did not fit whole; read back with the C library's CMSG_FIRSTHDR/CMSG_NXTHDR, the
 *      messages are the ones put, whole, in order, then at most one cut one.
 *   tag % 3 == 2: a sockaddr: u8 length (% 33), u8 flags (bit 0: AF_UNSPEC allowed), the bytes,
 *      then u8 the length of the buffer it is returned in (% 33). Checked against the rules of
 *      bind(2)/connect(2) and getsockname(2): AF_INET needs 16 bytes, another family is
 *      EAFNOSUPPORT, a family needs its 2 bytes; what comes back is AF_INET with the same port
 *      and address, cut to the buffer, and the length is the address's full size.
 *
 * The seed corpus (fuzz/corpus/fuzz_preload_msg/) comes from
 * fuzz/corpus/make_preload_msg_corpus.py.
 */
#define _GNU_SOURCE

#define FZ_NAME "fuzz_preload_msg"
#include "fz_input.h"
#include "host/toe_internal.h"
#include "preload/pl_msg.h"
#include "toe/abi.h"
#include "toe/errno.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NIOV 40

static void check_totals_only(struct fz_in *in)
{
  int n = fz_u8(in) % NIOV;
  struct iovec iov[NIOV];
  unsigned __int128 sum = 0;
  for (int i = 0; i < n; i++) {
    iov[i].iov_base = NULL; /* never read: only the lengths count */
    iov[i].iov_len = (size_t)fz_u64(in);
    sum += iov[i].iov_len;
  }
  ssize_t t = pl_iov_total(iov, n);
  if (sum > (unsigned __int128)SSIZE_MAX ? t != -EINVAL : t != (ssize_t)sum)
    FZ_FAIL("total %zd of %d entries summing to %llu", t, n, (unsigned long long)sum);
  if (pl_iov_total(iov, -1) != -EINVAL || pl_iov_total(iov, IOV_MAX + 1) != -EINVAL)
    FZ_FAIL("a count out of range is not EINVAL");
}

static void check_vector(struct fz_in *in, uint8_t tag)
{
  if (tag & 0x80) {
    check_totals_only(in);
    return;
  }
  int n = fz_u8(in) % NIOV;
  struct iovec iov[NIOV];
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    iov[i].iov_len = fz_u16(in) % 2048;
    /* exact size (a zero-length entry gets a 1-byte buffer it must never touch) */
    iov[i].iov_base = malloc(iov[i].iov_len ? iov[i].iov_len : 1);
    if (!iov[i].iov_base)
      abort();
    fz_bytes(in, iov[i].iov_base, iov[i].iov_len);
    total += iov[i].iov_len;
  }
  size_t cap = fz_u16(in) % 65536;
  if (pl_iov_total(iov, n) != (ssize_t)total)
    FZ_FAIL("total %zd, expected %zu", pl_iov_total(iov, n), total);

  /* gather: the concatenation, cut at cap */
  char *dst = malloc(cap ? cap : 1);
  char *want = malloc(total ? total : 1);
  if (!dst || !want)
    abort();
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    memcpy(want + o, iov[i].iov_base, iov[i].iov_len);
    o += iov[i].iov_len;
  }
  size_t k = pl_iov_gather(dst, cap, iov, n);
  size_t expect = total < cap ? total : cap;
  if (k != expect || memcmp(dst, want, k) != 0)
    FZ_FAIL("gather of %zu bytes into %zu gave %zu", total, cap, k);

  /* scatter: the gathered bytes go back where they came from; the rest of each entry keeps a
   * marker */
  for (int i = 0; i < n; i++)
    memset(iov[i].iov_base, 0xa5, iov[i].iov_len);
  size_t s = pl_iov_scatter(dst, k, iov, n);
  if (s != k)
    FZ_FAIL("scatter of %zu bytes copied %zu", k, s);
  o = 0;
  for (int i = 0; i < n; i++) {
    const uint8_t *b = iov[i].iov_base;
    for (size_t j = 0; j < iov[i].iov_len; j++, o++) {
      uint8_t w = o < k ? (uint8_t)want[o] : 0xa5;
      if (b[j] != w)
        FZ_FAIL("scatter: entry %d byte %zu is %#x, expected %#x", i, j, b[j], w);
    }
  }
  free(dst);
  free(want);
  for (int i = 0; i < n; i++)
    free(iov[i].iov_base);
}

struct put {
  int level, type;
  size_t len;
  uint8_t data[300];
};

static void check_cmsgs(struct fz_in *in)
{
  size_t cap = fz_u16(in) % 512, mis = fz_u8(in) % 8;
  int count = fz_u8(in) % 8;
  static struct put puts[8];
  /* the application's buffer, at any alignment, with a guard byte pattern either side */
  uint8_t *raw = malloc(cap + mis + 16);
  if (!raw)
    abort();
  memset(raw, 0x5a, cap + mis + 16);
  uint8_t *buf = raw + mis + 8;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_control = cap ? buf : NULL;
  msg.msg_controllen = cap;
  size_t used = 0;
  bool all_whole = true;
  for (int i = 0; i < count; i++) {
    puts[i].level = fz_u8(in);
    puts[i].type = fz_u8(in);
    puts[i].len = fz_u16(in) % 300;
    fz_bytes(in, puts[i].data, puts[i].len);
    bool whole = pl_cmsg_put(&msg, &used, puts[i].level, puts[i].type, puts[i].data, puts[i].len);
    all_whole = all_whole && whole;
    if (used > cap)
      FZ_FAIL("%zu bytes used of %zu", used, cap);
  }
  for (size_t i = 0; i < 8; i++)
    if (raw[mis + i] != 0x5a || raw[mis + 8 + cap + i] != 0x5a)
      FZ_FAIL("a byte outside the control buffer was written");
  if (!!(msg.msg_flags & MSG_CTRUNC) != !all_whole)
    FZ_FAIL("MSG_CTRUNC %s, but %s", (msg.msg_flags & MSG_CTRUNC) ? "set" : "clear",
            all_whole ? "every message fit" : "one did not");

  /* Read back as an application would, from an aligned copy of what was written. */
  union {
    struct cmsghdr align;
    uint8_t b[512];
  } copy;
  memcpy(copy.b, buf, used);
  struct msghdr rd;
  memset(&rd, 0, sizeof rd);
  rd.msg_control = copy.b;
  rd.msg_controllen = used;
  int i = 0;
  bool cut = false;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&rd); c; c = CMSG_NXTHDR(&rd, c), i++) {
    if (cut)
      FZ_FAIL("a message after a cut one");
    if (i >= count)
      FZ_FAIL("message %d was never put", i);
    if (c->cmsg_level != puts[i].level || c->cmsg_type != puts[i].type)
      FZ_FAIL("message %d: level/type %d/%d, put %d/%d", i, c->cmsg_level, c->cmsg_type,
              puts[i].level, puts[i].type);
    if (c->cmsg_len < CMSG_LEN(0) || c->cmsg_len > CMSG_LEN(puts[i].len))
      FZ_FAIL("message %d: cmsg_len %zu for %zu bytes", i, (size_t)c->cmsg_len, puts[i].len);
    size_t got = c->cmsg_len - CMSG_LEN(0);
    if ((const uint8_t *)CMSG_DATA(c) + got > copy.b + used)
      FZ_FAIL("message %d runs past msg_controllen", i);
    if (memcmp(CMSG_DATA(c), puts[i].data, got) != 0)
      FZ_FAIL("message %d: data differ", i);
    cut = got < puts[i].len;
  }
  /* Every message put whole is read back (the C library skips a header-only remainder). */
  if (all_whole && i != count)
    FZ_FAIL("%d of %d whole messages read back", i, count);
  free(raw);
}

static void check_sockaddr(struct fz_in *in)
{
  size_t len = fz_u8(in) % 33;
  bool unspec = fz_u8(in) & 1;
  uint8_t *sa = malloc(len ? len : 1);
  if (!sa)
    abort();
  fz_bytes(in, sa, len);
  struct toe_abi_sockaddr a;
  int rc = toe_sa_in((const struct sockaddr *)sa, (socklen_t)len, &a, unspec);
  int expect;
  sa_family_t fam = 0;
  if (len >= sizeof fam)
    memcpy(&fam, sa, sizeof fam);
  if (len < sizeof fam)
    expect = -TOE_EINVAL;
  else if (fam == AF_UNSPEC && unspec)
    expect = 0;
  else if (fam == AF_INET6) /* 1.7: the device judges the family against the socket's */
    expect = len < sizeof(struct sockaddr_in6) ? -TOE_EINVAL : 0;
  else if (fam != AF_INET)
    expect = -TOE_EAFNOSUPPORT;
  else if (len < sizeof(struct sockaddr_in))
    expect = -TOE_EINVAL;
  else
    expect = 0;
  if (rc != expect)
    FZ_FAIL("toe_sa_in of %zu bytes, family %u: %d, expected %d", len, fam, rc, expect);
  if (rc == 0 && fam == AF_INET) {
    struct sockaddr_in sin;
    memcpy(&sin, sa, sizeof sin);
    if (a.family != TOE_ABI_AF_INET || a.port != ntohs(sin.sin_port) ||
        memcmp(a.addr, &sin.sin_addr, 4) != 0)
      FZ_FAIL("toe_sa_in: the address changed on its way in");
  }
  if (rc == 0 && fam == AF_INET6) {
    struct sockaddr_in6 sin6;
    memcpy(&sin6, sa, sizeof sin6);
    if (a.family != TOE_ABI_AF_INET6 || a.port != ntohs(sin6.sin6_port) ||
        a.scope_id != sin6.sin6_scope_id || memcmp(a.addr, &sin6.sin6_addr, 16) != 0)
      FZ_FAIL("toe_sa_in: the IPv6 address changed on its way in");
  }

  /* back to the application, into a buffer of any size, as recvfrom/getsockname return it */
  socklen_t olen = fz_u8(in) % 33;
  uint8_t *out = malloc(olen ? olen : 1);
  if (!out)
    abort();
  memset(out, 0xee, olen ? olen : 1);
  socklen_t l = olen;
  toe_sa_out(rc == 0 ? &a : NULL, (struct sockaddr *)out, &l);
  /* an IPv6 address comes back as a sockaddr_in6, anything else as a sockaddr_in */
  bool v6 = rc == 0 && a.family == TOE_ABI_AF_INET6;
  union {
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } back;
  memset(&back, 0, sizeof back);
  size_t blen = v6 ? sizeof back.in6 : sizeof back.in;
  if (l != blen)
    FZ_FAIL("toe_sa_out: length %u", l);
  if (v6) {
    back.in6.sin6_family = AF_INET6;
    back.in6.sin6_port = htons(a.port);
    back.in6.sin6_scope_id = a.scope_id;
    memcpy(&back.in6.sin6_addr, a.addr, 16);
  } else {
    back.in.sin_family = AF_INET;
    if (rc == 0 && a.family == TOE_ABI_AF_INET) {
      back.in.sin_port = htons(a.port);
      memcpy(&back.in.sin_addr, a.addr, 4);
    }
  }
  size_t n = olen < blen ? olen : blen;
  if (memcmp(out, &back, n) != 0)
    FZ_FAIL("toe_sa_out: the address differs in the %zu bytes returned", n);
  for (size_t i = n; i < olen; i++)
    if (out[i] != 0xee)
      FZ_FAIL("toe_sa_out wrote past the address");
  free(out);
  free(sa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fz_in in = {data, size};
  while (in.n) {
    uint8_t tag = fz_u8(&in);
    switch (tag % 3) {
    case 0:
      check_vector(&in, tag);
      break;
    case 1:
      check_cmsgs(&in);
      break;
    default:
      check_sockaddr(&in);
      break;
    }
  }
  return 0;
}
