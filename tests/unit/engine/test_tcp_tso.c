/*
 * TCP segmentation offload (TOE_LINK_CAP_TSO) on a fake link that takes super-segments and cuts
 * them with toe_gso_segment(), as a NIC would: the cut is at the MSS, the peer's window and the
 * congestion window still bound what leaves, the FIN (and PSH) ride on the last piece only, a
 * retransmission is one MSS on its own, and the pieces are byte for byte the segments the engine
 * sends without TSO (checksums included).
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"
#include "wire/checksum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSS 1448u /* 1460 less the timestamp option */

static struct harness h; /* big: keep it off the stack */
static uint8_t pattern[1 << 18];

static void fill_pattern(void)
{
  for (size_t i = 0; i < sizeof(pattern); i++)
    pattern[i] = (uint8_t)(i * 7 + 3);
}

static const struct toe_counters_tcp *tc(void)
{
  return &toe_stack_counters(h.st)->tcp;
}

/* A stack whose link has TSO (and the checksum offload it needs), cut by the harness. */
static void init_tso(bool sw_csum)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = 2048;
  cfg.sock_max_bufs = 1024;
  cfg.link_caps |= TOE_LINK_CAP_TX_CSUM | TOE_LINK_CAP_TSO;
  h_init_cfg(&h, &cfg);
  h.gso_cut = true;
  h.gso_sw_csum = sw_csum;
  fill_pattern();
}

static uint16_t ip_id(const struct h_frame *f)
{
  return (uint16_t)(f->bytes[14 + 4] << 8 | f->bytes[14 + 5]);
}

/* The peer acknowledges everything we sent so far, with window field `win`. */
static void ack_all(struct h_conn *c, uint16_t win)
{
  c->rcv_nxt = toe_tcb(c->s)->snd_max;
  h_conn_send_raw(c, c->snd_nxt, c->rcv_nxt, H_ACK, win, NULL, NULL, 0);
}

/* Checks the pieces of super-segment `g`: consecutive MSS-sized segments (the last may be
 * shorter) carrying the pattern from stream offset `off`, valid checksums, consecutive IP ids,
 * PSH and FIN nowhere but on the last. Returns the payload bytes. */
static uint32_t check_pieces(const struct h_gso *g, uint32_t iss, uint32_t *off)
{
  uint32_t bytes = 0;
  CHECK_EQ(g->gso_size, MSS);
  CHECK(g->len <= 14u + 65535u);
  for (int i = 0; i < g->pieces; i++) {
    const struct h_frame *f = &h.tx[g->first + i];
    struct h_tcp t;
    bool ok = h_tcp_parse(f->bytes, f->len, &t);
    CHECK(ok);
    if (!ok)
      return bytes;
    CHECK(t.csum_ok);
    CHECK(t.ipcsum_ok);
    CHECK(t.df);
    CHECK(t.has_ts);
    CHECK_EQ(t.seq, iss + 1u + *off);
    if (i + 1 < g->pieces) {
      CHECK_EQ(t.dlen, MSS);
      CHECK_EQ(t.flags & (H_PSH | H_FIN), 0);
    } else {
      CHECK(t.dlen > 0 && t.dlen <= MSS);
    }
    if (i > 0)
      CHECK_EQ(ip_id(f), (uint16_t)(ip_id(&h.tx[g->first]) + i));
    CHECK_MEM(t.data, pattern + *off, t.dlen);
    *off += (uint32_t)t.dlen;
    bytes += (uint32_t)t.dlen;
  }
  CHECK_EQ(g->len, 14u + 20u + 32u + bytes);
  return bytes;
}

/* The initial window leaves as one super-segment of ten MSS pieces; after each ACK the grown
 * congestion window leaves as super-segments of at most 64 KiB. */
TEST(super_segments_cut_at_mss_within_cwnd)
{
  for (int sw = 0; sw < 2; sw++) {
    init_tso(sw != 0);
    struct h_conn c;
    h_conn_init(&c, &h, 7001);
    REQUIRE(h_conn_connect(&c, 0) == 0);
    h_clear(&h);
    CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 200000, 0), 200000);
    /* RFC 6928: an initial window of 10 segments; one super-segment carries them all */
    REQUIRE(h.ngso == 1);
    CHECK_EQ(h.gso[0].pieces, 10);
    CHECK_EQ(h.ntx, 10);
    CHECK_EQ(tc()->out_tso_frames, 1);
    uint32_t off = 0;
    CHECK_EQ(check_pieces(&h.gso[0], c.iss, &off), 10u * MSS);
    if (!sw) {
      /* pieces left for the NIC's checksum: each field held its own pseudo-header sum */
      for (int i = 0; i < h.ntx; i++) {
        CHECK(h.tx[i].csum_partial);
        uint16_t want = (uint16_t)~toe_csum_fold(
            toe_csum_pseudo_v4(H_OUR_IP, H_PEER_IP, TOE_IPPROTO_TCP, (uint16_t)(32u + MSS)));
        CHECK_EQ(h.tx[i].csum_field_before, want);
      }
    }
    /* slow start: each ACK of everything lets twice as much go, in super-segments */
    for (int round = 0; round < 4; round++) {
      h_clear(&h);
      ack_all(&c, c.win);
      REQUIRE(h.ngso >= 1);
      int pieces = 0;
      for (int g = 0; g < h.ngso; g++) {
        CHECK(h.gso[g].pieces <= 45); /* (65535 - 20 - 60) / 1448 */
        pieces += h.gso[g].pieces;
        check_pieces(&h.gso[g], c.iss, &off);
      }
      /* nothing but pieces of super-segments left (apart from a lone short tail) */
      CHECK(h.ntx - pieces <= 1);
    }
    CHECK_EQ(tc()->retrans_segs, 0);
    h_fini(&h);
  }
}

/* The peer's window bounds a super-segment like it bounds segments: a window of 7168 bytes lets
 * four full segments go, and sender SWS avoidance (RFC 9293 3.8.6.2.1) holds the rest. */
TEST(super_segment_within_peer_window)
{
  init_tso(true);
  struct h_conn c;
  h_conn_init(&c, &h, 7002);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* the peer shrinks its offer: 56 << 7 = 7168 bytes */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 56, NULL, NULL, 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 30000, 0), 30000);
  REQUIRE(h.ngso == 1);
  CHECK_EQ(h.gso[0].pieces, 4);
  CHECK_EQ(h.ntx, 4);
  uint32_t off = 0;
  CHECK_EQ(check_pieces(&h.gso[0], c.iss, &off), 4u * MSS);
  /* the window opens by 3 segments: exactly those go, as one super-segment */
  h_clear(&h);
  c.rcv_nxt = c.iss + 1u + 4u * MSS;
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, (uint16_t)((7u * MSS) >> 7), NULL, NULL, 0);
  /* the new right edge: 4 * 1448 acknowledged + (7 * 1448 >> 7 << 7 = 10112) = 15904 bytes from
   * the start; 5792 are out, so six more full segments fit and the 1424 left wait */
  REQUIRE(h.ngso == 1);
  CHECK_EQ(h.gso[0].pieces, 6);
  CHECK_EQ(h.ntx, 6);
  check_pieces(&h.gso[0], c.iss, &off);
  h_fini(&h);
}

/* A FIN queued behind data leaves on the last piece of the super-segment that carries the end of
 * the data; PSH too. */
TEST(fin_on_last_piece)
{
  init_tso(true);
  struct h_conn c;
  h_conn_init(&c, &h, 7003);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 20000, 0), 20000); /* 10 go, 4 wait for cwnd */
  REQUIRE(h.ngso == 1);
  CHECK_EQ(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR), 0);
  CHECK_EQ(h.ntx, 10); /* the FIN waits behind the data */
  h_clear(&h);
  ack_all(&c, c.win);
  REQUIRE(h.ngso == 1);
  CHECK_EQ(h.gso[0].pieces, 4); /* 20000 - 14480 = 3 * 1448 + 1176 */
  uint32_t off = 10u * MSS;
  CHECK_EQ(check_pieces(&h.gso[0], c.iss, &off), 20000u - 10u * MSS);
  struct h_tcp last;
  REQUIRE(h_tcp_parse(h.tx[3].bytes, h.tx[3].len, &last));
  CHECK_EQ(last.flags & (H_FIN | H_PSH), H_FIN | H_PSH);
  CHECK_EQ(last.dlen, 1176);
  CHECK_EQ(h.ntx, 4); /* no separate FIN */
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_FIN_WAIT_1);
  CHECK_EQ(toe_tcb(c.s)->snd_max, c.iss + 1u + 20000u + 1u);
  h_fini(&h);
}

/* Loss recovery retransmits one MSS out of a super-segment, as a plain segment: by SACK
 * (RFC 6675) and by the retransmission timer. */
TEST(retransmits_one_mss_of_a_super_segment)
{
  for (int by_rto = 0; by_rto < 2; by_rto++) {
    init_tso(true);
    struct h_conn c;
    h_conn_init(&c, &h, 7004);
    REQUIRE(h_conn_connect(&c, 0) == 0);
    h_clear(&h);
    CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 10u * MSS, 0), (int)(10u * MSS));
    REQUIRE(h.ngso == 1);
    CHECK_EQ(h.gso[0].pieces, 10);
    h_clear(&h);
    uint32_t want_seq;
    if (by_rto) {
      /* the whole flight is lost: the timer resends the first segment (a tail-loss probe may
       * have resent the last before it); nothing is resent as a super-segment */
      want_seq = c.iss + 1u;
      for (int step = 0; step < 300; step++) {
        h_advance(&h, TOE_MSEC(10));
        struct h_tcp t;
        if (h.ntx && h_tcp_parse(h.tx[h.ntx - 1].bytes, h.tx[h.ntx - 1].len, &t) &&
            t.seq == want_seq && t.dlen)
          break;
      }
    } else {
      /* the peer has the first two and SACKs pieces 4..10: the third is lost (RFC 6675 IsLost:
       * more than 3 * SMSS SACKed above it) and retransmitted, one MSS */
      struct h_tcp_opt o;
      h_tcp_opt_none(&o);
      o.ts = true;
      o.tsval = c.tsval++;
      o.tsecr = c.ts_recent;
      o.nsack = 1;
      o.sack[0][0] = c.iss + 1u + 3u * MSS;
      o.sack[0][1] = c.iss + 1u + 10u * MSS;
      c.rcv_nxt = c.iss + 1u + 2u * MSS;
      h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, c.win, &o, NULL, 0);
      want_seq = c.iss + 1u + 2u * MSS;
    }
    int found = 0, data = 0;
    for (int i = 0; i < h.ntx; i++) {
      struct h_tcp t;
      if (!h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t) || t.dlen == 0)
        continue;
      data++;
      CHECK(t.csum_ok);
      CHECK_EQ(t.dlen, MSS);
      CHECK_MEM(t.data, pattern + (t.seq - c.iss - 1u), MSS);
      if (t.seq == want_seq)
        found++;
    }
    CHECK_EQ(found, 1);
    CHECK(data <= 2);
    CHECK_EQ(h.ngso, 0);
    CHECK(tc()->retrans_segs >= 1);
    CHECK_EQ(tc()->out_tso_frames, 1);
    h_fini(&h);
  }
}

/* Frames of one run, kept across h_fini. */
struct run {
  int n;
  size_t len[H_MAX_FRAMES];
  uint8_t *bytes[H_MAX_FRAMES];
};
static struct run runs[2];

static void keep(struct run *r)
{
  for (int i = 0; i < h.ntx && r->n < H_MAX_FRAMES; i++) {
    r->len[r->n] = h.tx[i].len;
    r->bytes[r->n] = malloc(h.tx[i].len);
    memcpy(r->bytes[r->n], h.tx[i].bytes, h.tx[i].len);
    r->n++;
  }
  h_clear(&h);
}

/* The software cut of the super-segments gives exactly the frames of the path without TSO (and
 * without checksum offload): same sizes, sequence numbers, IP ids, flags, options, checksums. */
TEST(software_cut_matches_plain_segments)
{
  for (int tso = 0; tso < 2; tso++) {
    if (tso) {
      init_tso(true);
    } else {
      struct toe_config cfg;
      h_default_cfg(&cfg);
      cfg.pbuf_count = 2048;
      cfg.sock_max_bufs = 1024;
      h_init_cfg(&h, &cfg);
      fill_pattern();
    }
    struct run *r = &runs[tso];
    struct h_conn c;
    h_conn_init(&c, &h, 7005);
    REQUIRE(h_conn_connect(&c, 0) == 0);
    keep(r);
    CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 150001, 0), 150001);
    keep(r);
    for (int round = 0; round < 6; round++) {
      h_advance(&h, TOE_MSEC(5));
      ack_all(&c, c.win);
      keep(r);
    }
    CHECK_EQ(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR), 0);
    ack_all(&c, c.win);
    keep(r);
    if (tso) {
      printf("  %llu super-segments\n", (unsigned long long)tc()->out_tso_frames);
      CHECK(tc()->out_tso_frames >= 3);
    }
    h_fini(&h);
  }
  CHECK(runs[0].n > 100);
  CHECK_EQ(runs[0].n, runs[1].n);
  for (int i = 0; i < runs[0].n && i < runs[1].n; i++) {
    CHECK_EQ(runs[0].len[i], runs[1].len[i]);
    if (runs[0].len[i] == runs[1].len[i])
      CHECK_MEM(runs[0].bytes[i], runs[1].bytes[i], runs[0].len[i]);
    struct h_tcp t;
    CHECK(h_tcp_parse(runs[1].bytes[i], runs[1].len[i], &t) && t.csum_ok && t.ipcsum_ok);
  }
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < runs[k].n; i++)
      free(runs[k].bytes[i]);
}

/* Views keep the viewed buffers alive and shared: the send queue never changes a buffer a
 * super-segment in flight still shows, and every buffer comes back once the frames are gone. */
TEST(views_hold_the_viewed_buffers)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  h_init_cfg(&h, &cfg);
  uint32_t free0 = toe_pbuf_pool_free_count(h.st);
  uint8_t src[5000];
  for (size_t i = 0; i < sizeof(src); i++)
    src[i] = (uint8_t)(i ^ 0x5a);
  struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, sizeof(src), 0);
  REQUIRE(p != NULL);
  CHECK(!toe_pbuf_shared(p));
  struct toe_pbuf *v = toe_pbuf_ref_range(h.st, p, 1000, 3001);
  REQUIRE(v != NULL);
  CHECK_EQ(v->tot_len, 3001);
  CHECK(toe_pbuf_shared(p));
  CHECK_EQ(toe_pbuf_headroom(v), 0);
  CHECK_EQ(toe_pbuf_tailroom(v), 0);
  uint8_t out[3001];
  CHECK_EQ(toe_pbuf_copy_out(v, 0, out, sizeof(out)), sizeof(out));
  CHECK_MEM(out, src + 1000, sizeof(out));
  /* a view of a view */
  struct toe_pbuf *w = toe_pbuf_ref_range(h.st, v, 7, 2000);
  REQUIRE(w != NULL);
  CHECK_EQ(toe_pbuf_copy_out(w, 0, out, 2000), 2000);
  CHECK_MEM(out, src + 1007, 2000);
  CHECK(toe_pbuf_ref_range(h.st, p, 4000, 1001) == NULL); /* past the end */
  toe_pbuf_free(h.st, p);                                 /* the views keep the storage */
  CHECK_EQ(toe_pbuf_copy_out(w, 0, out, 2000), 2000);
  CHECK_MEM(out, src + 1007, 2000);
  toe_pbuf_free(h.st, v);
  toe_pbuf_free(h.st, w);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), free0);
  CHECK_EQ(toe_stack_counters(h.st)->pbuf.double_free, 0);
  h_fini(&h);
}

TEST_MAIN()
