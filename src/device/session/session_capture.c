/*
 * Capture (ABI 1.2): copies of the frames the device sees, matching the session's filter,
 * written as pcap records into buffers the host lent.
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Capture (1.2): copies of the frames the device sees, as pcap records in lent buffers        */

/* Takes the session off the device's list of captures. */
void ses_cap_unlist(struct ctl_client *cl)
{
  struct toed_ctl_dev *dev = cl->dev;
  cl->cap.on = false;
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
  /* The text is the host's and may change under us: compile a private copy. */
  char text[TOE_ABI_CAPTURE_FILTER_MAX];
  uint32_t n = sqe->u.capture.len; /* validated: <= the maximum, inside the buffer area */
  if (n)
    memcpy(text, cl->region + sqe->u.capture.buf_off, n);
  if (toe_capf_compile(&cp->filter, text, n, NULL, NULL) < 0) {
    ses_finish_res(cl, sqe, -TOE_EINVAL);
    return;
  }
  uint32_t room = cl->abi.layout.buf_size - TOE_ABI_CAPTURE_REC_HDR;
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

static void put_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

void ctl_session_capture(struct ctl_client *cl, const uint8_t *bytes, size_t len,
                         const struct toe_pbuf *chain, uint64_t ts_ns)
{
  struct ctl_capture *cp = &cl->cap;
  if (!cp->on || cl->end_status)
    return;
  /* The filter reads headers only: a chain's first bytes are gathered into one place. */
  uint8_t head[TOE_CAPF_HEADER_BYTES];
  const uint8_t *hp = bytes;
  size_t hlen = len;
  if (chain) {
    len = chain->tot_len;
    hlen = 0;
    for (const struct toe_pbuf *b = chain; b && hlen < sizeof(head); b = b->next) {
      size_t k = b->len < sizeof(head) - hlen ? b->len : sizeof(head) - hlen;
      memcpy(head + hlen, b->data, k);
      hlen += k;
    }
    hp = head;
  }
  if (!toe_capf_match(&cp->filter, hp, hlen))
    return;
  const uint32_t bsize = cl->abi.layout.buf_size;
  uint32_t incl = len < cp->snaplen ? (uint32_t)len : cp->snaplen;
  uint32_t need = TOE_ABI_CAPTURE_REC_HDR + incl;
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
  put_le32(p, (uint32_t)(ts_ns / 1000000000ull));
  put_le32(p + 4, (uint32_t)(ts_ns % 1000000000ull));
  put_le32(p + 8, incl);
  put_le32(p + 12, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
  p += TOE_ABI_CAPTURE_REC_HDR;
  if (chain) {
    uint32_t left = incl;
    for (const struct toe_pbuf *b = chain; b && left; b = b->next) {
      uint32_t k = b->len < left ? b->len : left;
      memcpy(p, b->data, k);
      p += k;
      left -= k;
    }
  } else {
    memcpy(p, bytes, incl);
  }
  cp->used += need;
  cp->records++;
  cp->pending++;
}
