/*
 * Capture (ABI 1.2): copies of the frames the device sees, matching the session's filter,
 * written as pcap records into buffers the host lent.
 */
#define _GNU_SOURCE

#include "common/byteorder.h"
#include "device/session/session_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Capture (1.2): copies of the frames the device sees, as pcap records in lent buffers        */

/* Takes the session off the device's list of captures (and gives back its program slot). */
void ses_cap_unlist(struct ctl_client *cl)
{
  struct toed_ctl_dev *dev = cl->dev;
  cl->cap.on = false;
  if (cl->cap.prog) {
    dev->cap_progs_used &= ~(1u << cl->cap.prog_slot);
    cl->cap.prog = NULL;
    cl->cap.prog_len = 0;
  }
  for (uint32_t i = 0; i < dev->capturing; i++)
    if (dev->capturers[i] == cl) {
      dev->capturers[i] = dev->capturers[--dev->capturing];
      break;
    }
}

/* Lends the buffer being filled with an EV_CAPTURE. False if the CQ has no room (it stays). */
bool ses_cap_post(struct ctl_client *cl)
{
  struct ctl_capture *cp = &cl->cap;
  if (cp->buf == CTL_NONE || cp->records == 0)
    return true;
  /* A frame the engine sends from inside a receive (a window update from toe_tcp_recv) comes
   * here between that receive's room check and its EV_DATA: the slot it checked is not ours. */
  if (!ses_ev_room_keep(cl, cl->rx_handoff ? 1u : 0u))
    return false;
  if (toe_abi_buf_give(&cl->abi, cp->buf) < 0)
    return true; /* not reached: the buffer is the device's while it is being filled */
  cp->frames += cp->pending;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  cqe.u.capture.buf_id = cp->buf;
  cqe.u.capture.len = cp->used;
  cqe.u.capture.records = cp->records;
  cqe.u.capture.frames = cp->frames;
  cqe.u.capture.dropped = cp->dropped;
  ses_post_event(cl, NULL, TOE_ABI_EV_CAPTURE, (int32_t)cp->used, 0, &cqe);
  cl->dev->stats.capture_frames += cp->pending;
  cl->dev->stats.bufs_lent++;
  cp->buf = CTL_NONE;
  cp->used = cp->records = 0;
  cp->pending = 0;
  return true;
}

/* Ends the capture: the buffer being filled goes to the host if the CQ has room, else its
 * frames count as dropped and it stays the device's. */
static void cap_end(struct ctl_client *cl)
{
  struct ctl_capture *cp = &cl->cap;
  if (!cp->on)
    return;
  if (!ses_cap_post(cl)) {
    cp->dropped += cp->pending;
    cl->dev->stats.capture_dropped += cp->pending;
  }
  if (cp->buf != CTL_NONE)
    cl->free_bufs[cl->nfree_bufs++] = cp->buf;
  cp->buf = CTL_NONE;
  cp->used = cp->records = 0;
  cp->pending = 0;
  ses_cap_unlist(cl);
}

/* Bytes of record header: the pcap record's 16, and the direction word if asked for (1.4). */
static uint32_t cap_rec_hdr(const struct ctl_capture *cp)
{
  return cp->dir ? TOE_ABI_CAPTURE_REC_HDR_DIR : TOE_ABI_CAPTURE_REC_HDR;
}

/* 1.2: the filter text. The host's and may change under us: a private copy is compiled. */
static int cap_load_text(struct ctl_client *cl, uint64_t off, uint32_t n)
{
  char text[TOE_ABI_CAPTURE_FILTER_MAX];
  if (n)
    memcpy(text, cl->region + off, n);
  return toe_capf_compile(&cl->cap.filter, text, n, NULL, NULL) < 0 ? -TOE_EINVAL : 0;
}

/* 1.4: a BPF program, copied (decoded from the ABI's little-endian records) into a free slot and
 * checked there, so the host cannot change what was checked. -TOE_EINVAL if the checker refuses
 * it (toectl checks with the same code first and says why). */
static int cap_load_prog(struct ctl_client *cl, uint64_t off, uint32_t len)
{
  struct toed_ctl_dev *dev = cl->dev;
  uint32_t slot = 0;
  while (slot < TOED_CTL_CAPTURES_MAX && (dev->cap_progs_used & (1u << slot)))
    slot++;
  if (slot == TOED_CTL_CAPTURES_MAX)
    return -TOE_EBUSY; /* not reached: a slot per capture, and the captures are counted */
  struct toe_bpf_insn *prog = dev->cap_progs + (size_t)slot * TOE_BPF_MAXINSNS;
  uint32_t n = len / (uint32_t)sizeof(struct toe_abi_bpf_insn);
  const uint8_t *p = cl->region + off;
  for (uint32_t i = 0; i < n; i++, p += 8) {
    prog[i].code = (uint16_t)(p[0] | p[1] << 8);
    prog[i].jt = p[2];
    prog[i].jf = p[3];
    prog[i].k = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
  }
  if (toe_bpf_check(prog, n, NULL, NULL) < 0)
    return -TOE_EINVAL;
  dev->cap_progs_used |= 1u << slot;
  cl->cap.prog = prog;
  cl->cap.prog_len = n;
  cl->cap.prog_slot = slot;
  return 0;
}

void ses_op_capture(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  struct ctl_capture *cp = &cl->cap;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  if (sqe->u.capture.capture_flags & TOE_ABI_CAPTURE_F_STOP) {
    if (!cp->on) {
      ses_finish_res(cl, sqe, -TOE_ENOENT);
      return;
    }
    cap_end(cl);
    cqe.u.capture.frames = cp->frames;
    cqe.u.capture.dropped = cp->dropped;
    ses_finish(cl, &cqe, sqe, 0);
    return;
  }
  if (cp->on || cl->dev->capturing >= TOED_CTL_CAPTURES_MAX) {
    ses_finish_res(cl, sqe, -TOE_EBUSY);
    return;
  }
  uint32_t flags = sqe->u.capture.capture_flags;
  uint32_t n = sqe->u.capture.len; /* validated: bounded, inside the buffer area */
  int rc = (flags & TOE_ABI_CAPTURE_F_BPF) ? cap_load_prog(cl, sqe->u.capture.buf_off, n)
                                           : cap_load_text(cl, sqe->u.capture.buf_off, n);
  if (rc < 0) {
    ses_finish_res(cl, sqe, rc);
    return;
  }
  cp->dir = (flags & TOE_ABI_CAPTURE_F_DIR) != 0;
  uint32_t room = cl->abi.layout.buf_size - cap_rec_hdr(cp);
  cp->snaplen =
      sqe->u.capture.snaplen && sqe->u.capture.snaplen < room ? sqe->u.capture.snaplen : room;
  cp->buf = CTL_NONE;
  cp->used = cp->records = 0;
  cp->frames = cp->pending = cp->dropped = 0;
  cp->on = true;
  cl->dev->capturers[cl->dev->capturing++] = cl;
  cl->dev->stats.captures++;
  ses_finish_res(cl, sqe, 0);
}

void ctl_session_capture(struct ctl_client *cl, const uint8_t *bytes, uint32_t buflen,
                         uint32_t wirelen, unsigned dir, uint64_t ts_ns)
{
  struct ctl_capture *cp = &cl->cap;
  if (!cp->on || cl->end_status)
    return;
  uint32_t incl = buflen < cp->snaplen ? buflen : cp->snaplen;
  if (cp->prog) {
    /* Classic BPF's answer is the snap length: 0 drops, less than the frame cuts it. */
    uint32_t want = toe_bpf_run(cp->prog, cp->prog_len, bytes, wirelen, buflen);
    if (want == 0)
      return;
    if (want < incl)
      incl = want;
  } else if (!toe_capf_match(&cp->filter, bytes, buflen)) {
    return;
  }
  const uint32_t bsize = cl->abi.layout.buf_size;
  const uint32_t hdr = cap_rec_hdr(cp);
  uint32_t need = hdr + incl;
  if (cp->buf != CTL_NONE && cp->used + need > bsize)
    (void)ses_cap_post(
        cl); /* full: lend it (if the CQ has no room, it stays and this frame drops) */
  if (cp->buf == CTL_NONE && cl->nfree_bufs)
    cp->buf = cl->free_bufs[--cl->nfree_bufs];
  if (cp->buf == CTL_NONE || cp->used + need > bsize) {
    cp->dropped++;
    cl->dev->stats.capture_dropped++;
    return;
  }
  uint8_t *p = cl->region + toe_abi_buf_offset(&cl->abi, cp->buf) + cp->used;
  /* A classic pcap record header (nanosecond variant), little-endian like the ABI. */
  toe_store_le32(p, (uint32_t)(ts_ns / 1000000000ull));
  toe_store_le32(p + 4, (uint32_t)(ts_ns % 1000000000ull));
  toe_store_le32(p + 8, incl);
  toe_store_le32(p + 12, wirelen);
  if (cp->dir)
    toe_store_le32(p + 16, dir & 3u); /* pcapng epb_flags' direction bits */
  memcpy(p + hdr, bytes, incl);
  cp->used += need;
  cp->records++;
  cp->pending++;
}
