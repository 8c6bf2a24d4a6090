/* STUB: replaced by the UDP implementation. */
#include "engine/stack.h"

size_t toe_udp_mem_size(const struct toe_config *cfg) { return 0; }
void toe_udp_init(struct toe_stack *st, void *mem) {}
void toe_udp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  toe_pbuf_free(st, pb);
}
void toe_udp_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4,
                        int err)
{
}
int toe_udp_open(struct toe_stack *st, void *user, struct toe_sock **out) { return -TOE_EMFILE; }
int toe_sock_bind(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *local)
{
  return -TOE_EINVAL;
}
int toe_sock_connect(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *remote)
{
  return -TOE_EINVAL;
}
int toe_udp_sendto(struct toe_stack *st, struct toe_sock *s, const void *data, size_t len,
                   const struct toe_sockaddr *dst)
{
  return -TOE_EINVAL;
}
int toe_udp_send_pbuf(struct toe_stack *st, struct toe_sock *s, struct toe_pbuf *payload,
                      const struct toe_sockaddr *dst)
{
  toe_pbuf_free(st, payload);
  return -TOE_EINVAL;
}
int toe_udp_recvfrom(struct toe_stack *st, struct toe_sock *s, void *buf, size_t cap,
                     struct toe_sockaddr *from)
{
  return -TOE_EAGAIN;
}
struct toe_pbuf *toe_udp_recv_pbuf(struct toe_stack *st, struct toe_sock *s,
                                   struct toe_sockaddr *from)
{
  return NULL;
}
uint32_t toe_udp_rx_pending(const struct toe_sock *s, uint32_t *bytes) { return 0; }
void toe_sock_close(struct toe_stack *st, struct toe_sock *s) {}
