/*
 * The device's classic-BPF checker and interpreter (src/transport/capture_bpf.c) against libpcap:
 * tcpdump expressions compiled with pcap_compile(), run by both toe_bpf_run() and libpcap's own
 * bpf_filter() on thousands of generated Ethernet frames (IPv4 TCP/UDP/ICMP with options and
 * fragments, ARP, 802.1Q, IPv6, runts, truncated captures) must give identical answers; and the
 * checker refuses what could loop or fault (the rules of Linux's sk_chk_filter).
 */
#define _DEFAULT_SOURCE /* libpcap's headers use u_int and friends */

#include "common/prng.h"
#include "testlib.h"
#include "toe/errno.h"
#include "transport/capture_bpf.h"

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SNAP 262144

/* The tree's one PRNG (src/common/prng.h), from a fixed state: the same frames on every run. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
  return (uint32_t)(toe_prng_next(&rng) >> 32);
}

static uint32_t pick(const uint32_t *v, size_t n)
{
  return v[rnd() % n];
}

/* Builds a random but mostly well-formed frame into f (room for 1600 bytes); returns its length. */
static size_t gen_frame(uint8_t *f)
{
  static const uint32_t types[] = {0x0800, 0x0800, 0x0800, 0x0806, 0x8100, 0x86dd, 0x1234};
  static const uint32_t protos[] = {6, 6, 17, 17, 1, 47, 6};
  static const uint32_t addrs[] = {0xc6120001, 0xc6120002, 0xc6120101, 0x0a000001, 0xc6120001};
  static const uint32_t ports[] = {80, 53, 22, 443, 8080, 80, 12345};
  size_t len = 0;
  for (int i = 0; i < 12; i++)
    f[len++] = (uint8_t)rnd();
  uint32_t type = pick(types, sizeof types / sizeof types[0]);
  if (type == 0x8100) { /* one tag, then a type from the list (rarely a second tag) */
    f[len++] = 0x81, f[len++] = 0x00;
    f[len++] = (uint8_t)(rnd() & 0x0f), f[len++] = (uint8_t)rnd();
    type = pick(types, sizeof types / sizeof types[0]);
  }
  f[len++] = (uint8_t)(type >> 8), f[len++] = (uint8_t)type;
  if (type == 0x0800) {
    uint8_t *ip = f + len;
    unsigned ihl = (rnd() % 8) ? 5 : 5 + rnd() % 4; /* sometimes options */
    if (rnd() % 50 == 0)
      ihl = rnd() % 5; /* a bad header length */
    memset(ip, 0, 60);
    ip[0] = (uint8_t)(0x40 | ihl);
    ip[1] = (uint8_t)rnd();
    uint32_t proto = pick(protos, sizeof protos / sizeof protos[0]);
    ip[6] = (rnd() % 6) ? 0x40 : (uint8_t)(rnd() & 0x3f); /* DF, or MF/offset bits */
    ip[7] = (rnd() % 6) ? 0 : (uint8_t)rnd();
    ip[8] = (uint8_t)rnd(); /* ttl: "ip[8] < 64" sees both sides */
    ip[9] = (uint8_t)proto;
    uint32_t s = pick(addrs, 5), d = pick(addrs, 5);
    for (int i = 0; i < 4; i++) {
      ip[12 + i] = (uint8_t)(s >> (24 - 8 * i));
      ip[16 + i] = (uint8_t)(d >> (24 - 8 * i));
    }
    size_t hl = ihl >= 5 ? ihl * 4u : 20u;
    uint8_t *l4 = ip + hl;
    size_t l4len = 20 + rnd() % 200;
    for (size_t i = 0; i < l4len; i++)
      l4[i] = (uint8_t)rnd();
    uint32_t sp = pick(ports, 7), dp = pick(ports, 7);
    l4[0] = (uint8_t)(sp >> 8), l4[1] = (uint8_t)sp;
    l4[2] = (uint8_t)(dp >> 8), l4[3] = (uint8_t)dp;
    size_t tot = hl + l4len;
    ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
    len += tot;
  } else if (type == 0x0806) {
    static const uint8_t hdr[] = {0, 1, 8, 0, 6, 4, 0, 1};
    memcpy(f + len, hdr, sizeof hdr);
    for (int i = 8; i < 28; i++)
      f[len + (size_t)i] = (uint8_t)rnd();
    uint32_t s = pick(addrs, 5);
    for (int i = 0; i < 4; i++)
      f[len + 14 + (size_t)i] = (uint8_t)(s >> (24 - 8 * i));
    len += 28;
  } else {
    size_t n = rnd() % 120;
    for (size_t i = 0; i < n; i++)
      f[len++] = (uint8_t)rnd();
    if (type == 0x86dd && n > 6)
      f[len - n + 6] = (uint8_t)pick(protos, 7); /* next header */
  }
  if (rnd() % 20 == 0)
    len = rnd() % (len + 1); /* a runt */
  return len;
}

static const char *const exprs[] = {
    "tcp port 80",
    "icmp",
    "arp",
    "udp and dst port 53",
    "tcp[tcpflags] & tcp-syn != 0",
    "ip[8] < 64",
    "len > 100",
    "vlan",
    "host 198.18.0.1 and not port 22",
    "tcp[13] & 2 != 0 and net 198.18.0.0/24",
    "ip and not (tcp or udp)",
    "ip6",
    "vlan and tcp port 80",
    "src 198.18.0.2 or (udp and portrange 50-60)",
    "ip[6:2] & 0x1fff != 0",
    "greater 200 and less 400",
    "ether[0] & 1 = 0 and ip proto 47",
    "",
};

/* Compiles `expr` the way toectl does. */
static bool compile(const char *expr, struct bpf_program *bp)
{
  pcap_t *p = pcap_open_dead(DLT_EN10MB, SNAP);
  if (!p)
    return false;
  int rc = pcap_compile(p, bp, expr, 1, PCAP_NETMASK_UNKNOWN);
  if (rc < 0)
    fprintf(stderr, "pcap_compile(%s): %s\n", expr, pcap_geterr(p));
  pcap_close(p);
  return rc == 0;
}

static void to_toe(const struct bpf_program *bp, struct toe_bpf_insn *out)
{
  for (u_int i = 0; i < bp->bf_len; i++) {
    out[i].code = bp->bf_insns[i].code;
    out[i].jt = bp->bf_insns[i].jt;
    out[i].jf = bp->bf_insns[i].jf;
    out[i].k = bp->bf_insns[i].k;
  }
}

TEST(expressions_agree_with_libpcap)
{
  static uint8_t frame[2048];
  static struct toe_bpf_insn prog[TOE_BPF_MAXINSNS];
  for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
    struct bpf_program bp;
    REQUIRE(compile(exprs[e], &bp));
    REQUIRE((uint32_t)bp.bf_len <= TOE_BPF_MAXINSNS);
    to_toe(&bp, prog);
    uint32_t bad = 0;
    const char *why = NULL;
    CHECK_EQ(toe_bpf_check(prog, bp.bf_len, &bad, &why), 0);
    unsigned kept = 0, dropped = 0, differ = 0;
    for (int i = 0; i < 6000; i++) {
      size_t wire = gen_frame(frame);
      /* Sometimes only a prefix is present (a truncated capture): loads past it drop. */
      size_t buf = (rnd() % 8 == 0 && wire) ? rnd() % wire : wire;
      uint32_t want = (uint32_t)bpf_filter(bp.bf_insns, frame, (u_int)wire, (u_int)buf);
      uint32_t got = toe_bpf_run(prog, bp.bf_len, frame, (uint32_t)wire, (uint32_t)buf);
      if (got != want && differ++ < 3)
        testlib_fail(__FILE__, __LINE__, "\"%s\" on a %zu-byte frame (%zu present): %u, libpcap %u",
                     exprs[e], wire, buf, got, want);
      if (want)
        kept++;
      else
        dropped++;
    }
    /* Both answers occur for every expression (but the empty one keeps all): the frames reach
     * the interesting paths, so agreement means something. */
    if (exprs[e][0]) {
      if (kept < 20 || dropped < 20)
        testlib_fail(__FILE__, __LINE__, "\"%s\": %u kept, %u dropped: frames too uniform",
                     exprs[e], kept, dropped);
    } else {
      CHECK_EQ(dropped, 0);
    }
    pcap_freecode(&bp);
  }
}

TEST(snap_length_is_the_answer)
{
  /* "ret #262144" from pcap_compile; a hand program returns A = the frame's length minus 4. */
  struct bpf_program bp;
  REQUIRE(compile("arp", &bp));
  static struct toe_bpf_insn prog[64];
  to_toe(&bp, prog);
  uint8_t f[60] = {0};
  f[12] = 0x08, f[13] = 0x06;
  CHECK_EQ(toe_bpf_run(prog, bp.bf_len, f, 60, 60), SNAP);
  pcap_freecode(&bp);
  const struct toe_bpf_insn len_minus_4[] = {
      {0x80, 0, 0, 0}, /* ld len */
      {0x14, 0, 0, 4}, /* sub #4 */
      {0x16, 0, 0, 0}, /* ret a */
  };
  CHECK_EQ(toe_bpf_check(len_minus_4, 3, NULL, NULL), 0);
  CHECK_EQ(toe_bpf_run(len_minus_4, 3, f, 1000, 60), 996); /* the length on the wire */
}

/* One program, both interpreters, on a 20-byte frame. */
static void same(const struct toe_bpf_insn *p, uint32_t n, uint32_t expect)
{
  uint8_t f[20];
  for (int i = 0; i < 20; i++)
    f[i] = (uint8_t)(0x10 + i);
  struct bpf_insn q[16];
  for (uint32_t i = 0; i < n; i++)
    q[i] = (struct bpf_insn){p[i].code, p[i].jt, p[i].jf, p[i].k};
  CHECK_EQ(toe_bpf_check(p, n, NULL, NULL), 0);
  CHECK_EQ(bpf_validate(q, (int)n), 1);
  CHECK_EQ(bpf_filter(q, f, 20, 20), expect);
  CHECK_EQ(toe_bpf_run(p, n, f, 20, 20), expect);
}

TEST(edges_agree_with_libpcap)
{
  /* ld [18] word: bytes 18..21 of a 20-byte frame: outside, so 0. */
  same((const struct toe_bpf_insn[]){{0x20, 0, 0, 18}, {0x16, 0, 0, 0}}, 2, 0);
  /* ld [16] word: 0x20212223. */
  same((const struct toe_bpf_insn[]){{0x20, 0, 0, 16}, {0x16, 0, 0, 0}}, 2, 0x20212223);
  /* ldx #0xffffffff; ld [x + 2] byte: the index wraps past 32 bits in neither: outside, 0. */
  same((const struct toe_bpf_insn[]){{0x01, 0, 0, 0xffffffffu}, {0x50, 0, 0, 2}, {0x16, 0, 0, 0}},
       3, 0);
  /* ldx 4*([0]&0xf) = 0; div x: division by X = 0 drops. */
  same(
      (const struct toe_bpf_insn[]){
          {0x00, 0, 0, 7}, {0xb1, 0, 0, 0}, {0x3c, 0, 0, 0}, {0x06, 0, 0, 99}},
      4, 0);
  /* lsh x with X = 40: 0, not undefined behaviour. */
  same(
      (const struct toe_bpf_insn[]){
          {0x00, 0, 0, 7}, {0x01, 0, 0, 40}, {0x6c, 0, 0, 0}, {0x16, 0, 0, 0}},
      4, 0);
  /* neg, st/ld mem, tax/txa, jset, mod, xor. */
  same((const struct toe_bpf_insn[]){{0x00, 0, 0, 5},
                                     {0x84, 0, 0, 0},          /* A = -5 */
                                     {0x02, 0, 0, 3},          /* M[3] = A */
                                     {0x00, 0, 0, 100},        /* A = 100 */
                                     {0x94, 0, 0, 7},          /* A %= 7 -> 2 */
                                     {0xa4, 0, 0, 1},          /* A ^= 1 -> 3 */
                                     {0x07, 0, 0, 0},          /* X = A */
                                     {0x60, 0, 0, 3},          /* A = M[3] */
                                     {0x45, 0, 1, 0x80000000}, /* jset sign */
                                     {0x87, 0, 0, 0},          /* A = X */
                                     {0x16, 0, 0, 0}},
       11, 3);
}

TEST(checker_refuses_what_could_loop_or_fault)
{
  uint32_t bad = 99;
  const char *why = NULL;
  static struct toe_bpf_insn big[TOE_BPF_MAXINSNS + 1];
  for (uint32_t i = 0; i <= TOE_BPF_MAXINSNS; i++)
    big[i] = (struct toe_bpf_insn){0x06, 0, 0, 0};
  CHECK_EQ(toe_bpf_check(big, TOE_BPF_MAXINSNS, NULL, NULL), 0);
  CHECK_EQ(toe_bpf_check(big, TOE_BPF_MAXINSNS + 1, &bad, &why), -TOE_EINVAL);
  CHECK(why != NULL);
  CHECK_EQ(toe_bpf_check(big, 0, &bad, &why), -TOE_EINVAL);

  struct {
    struct toe_bpf_insn p[3];
    uint32_t n, at;
  } cases[] = {
      {{{0x05, 0, 0, 0xffffffffu}, {0x06, 0, 0, 0}}, 2, 0}, /* ja -1: backwards (a loop) */
      {{{0x05, 0, 0, 1}, {0x06, 0, 0, 0}}, 2, 0},           /* ja past the end */
      {{{0x15, 2, 0, 1}, {0x06, 0, 0, 0}}, 2, 0},           /* jeq true branch past the end */
      {{{0x15, 0, 1, 1}, {0x06, 0, 0, 0}}, 2, 0},           /* jeq false branch past the end */
      {{{0x34, 0, 0, 0}, {0x06, 0, 0, 0}}, 2, 0},           /* div #0 */
      {{{0x94, 0, 0, 0}, {0x06, 0, 0, 0}}, 2, 0},           /* mod #0 */
      {{{0x64, 0, 0, 32}, {0x06, 0, 0, 0}}, 2, 0},          /* lsh #32 */
      {{{0x02, 0, 0, 16}, {0x06, 0, 0, 0}}, 2, 0},          /* st M[16] */
      {{{0x61, 0, 0, 20}, {0x06, 0, 0, 0}}, 2, 0},          /* ldx M[20] */
      {{{0x00, 0, 0, 1}, {0x04, 0, 0, 1}}, 2, 1},           /* no RET at the end */
      {{{0xff, 0, 0, 0}, {0x06, 0, 0, 0}}, 2, 0},           /* unknown opcode */
      {{{0x8c, 0, 0, 0}, {0x06, 0, 0, 0}}, 2, 0},           /* neg x: no such thing */
      {{{0x0e, 0, 0, 0}, {0x06, 0, 0, 0}}, 2, 0},           /* ret x: not classic BPF */
      {{{0x106, 0, 0, 0}, {0x06, 0, 0, 0}}, 2, 0},          /* bits above the opcode byte */
      {{{0x06, 0, 0, 0}, {0x15, 0, 0, 0}}, 2, 1},           /* a jump as the last instruction */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bad = 99;
    why = NULL;
    if (toe_bpf_check(cases[i].p, cases[i].n, &bad, &why) != -TOE_EINVAL) {
      testlib_fail(__FILE__, __LINE__, "case %zu accepted", i);
      continue;
    }
    CHECK_EQ(bad, cases[i].at);
    CHECK(why != NULL);
  }
}

TEST(protochain_needs_backward_jumps)
{
  /* libpcap implements "ip protochain" with a loop: the device refuses it (toectl says why). */
  struct bpf_program bp;
  REQUIRE(compile("ip protochain 6", &bp));
  static struct toe_bpf_insn prog[TOE_BPF_MAXINSNS];
  REQUIRE((uint32_t)bp.bf_len <= TOE_BPF_MAXINSNS);
  to_toe(&bp, prog);
  /* libpcap 1.10 encodes the loop as a jump with a huge (negative) offset. */
  CHECK_EQ(toe_bpf_check(prog, bp.bf_len, NULL, NULL), -TOE_EINVAL);
  pcap_freecode(&bp);
}

TEST_MAIN()
