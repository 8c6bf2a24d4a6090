/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

struct toe_tcb *toe_tcb_alloc(struct toe_stack *st)
{ return 0; }
void toe_tcb_free(struct toe_stack *st, struct toe_tcb *tp)
{}
void toe_tcp_drop(struct toe_stack *st, struct toe_tcb *tp, int err)
{}
void toe_tcp_close_final(struct toe_stack *st, struct toe_tcb *tp)
{}
void toe_tcp_notify(struct toe_stack *st, struct toe_tcb *tp, uint32_t events)
{}
const char *toe_tcp_state_name(int state) { return "?"; }
int toe_tcp_open(struct toe_stack *st, void *user, struct toe_sock **out) { return -TOE_EMFILE; }
int toe_tcp_listen(struct toe_stack *st, struct toe_sock *s, int backlog) { return -TOE_EINVAL; }
int toe_tcp_accept(struct toe_stack *st, struct toe_sock *listener, void *user,
                   struct toe_sock **out)
{
  return -TOE_EAGAIN;
}
int toe_tcp_send(struct toe_stack *st, struct toe_sock *s, const void *data, size_t len,
                 unsigned flags)
{
  return -TOE_ENOTCONN;
}
int toe_tcp_recv(struct toe_stack *st, struct toe_sock *s, void *buf, size_t cap)
{
  return -TOE_ENOTCONN;
}
uint32_t toe_tcp_rx_pending(const struct toe_sock *s) { return 0; }
uint32_t toe_tcp_tx_pending(const struct toe_sock *s) { return 0; }
uint32_t toe_tcp_tx_space(const struct toe_sock *s) { return 0; }
int toe_tcp_shutdown(struct toe_stack *st, struct toe_sock *s, int how) { return -TOE_ENOTCONN; }
void toe_tcp_abort(struct toe_stack *st, struct toe_sock *s) {}
int toe_sock_setopt(struct toe_stack *st, struct toe_sock *s, int opt, int64_t value)
{
  return -TOE_ENOPROTOOPT;
}
int toe_sock_getopt(const struct toe_stack *st, const struct toe_sock *s, int opt, int64_t *value)
{
  return -TOE_ENOPROTOOPT;
}
int toe_tcp_get_info(const struct toe_stack *st, const struct toe_sock *s,
                     struct toe_tcp_info *info)
{
  return -TOE_EINVAL;
}
void toe_tcp_visit(const struct toe_stack *st, toe_tcp_visit_fn fn, void *arg) {}
