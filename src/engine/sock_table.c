/* STUB: replaced by the socket table implementation. */
#include "engine/stack.h"

size_t toe_socktab_mem_size(const struct toe_config *cfg) { return 0; }
void toe_socktab_init(struct toe_stack *st, void *mem) {}
void toe_socktab_insert(struct toe_stack *st, struct toe_sock *s) {}
void toe_socktab_remove(struct toe_stack *st, struct toe_sock *s) {}
struct toe_sock *toe_socktab_lookup(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                                    uint16_t lport, uint32_t raddr, uint16_t rport)
{
  return NULL;
}
bool toe_socktab_port_in_use(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                             uint16_t lport)
{
  return false;
}
uint16_t toe_socktab_ephemeral(struct toe_stack *st, uint8_t proto, uint32_t laddr) { return 0; }
void toe_sock_notify(struct toe_stack *st, struct toe_sock *s, uint32_t events) {}
void toe_sock_set_error(struct toe_stack *st, struct toe_sock *s, int err) {}
int toe_sock_error(struct toe_stack *st, struct toe_sock *s) { return 0; }
int toe_sock_name(const struct toe_sock *s, struct toe_sockaddr *local, struct toe_sockaddr *remote)
{
  return 0;
}
