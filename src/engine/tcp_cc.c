/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

const struct toe_cc_ops *toe_cc_by_id(uint32_t id)
{ return 0; }
const struct toe_cc_ops toe_cc_newreno = {.name = "newreno", .id = TOE_CC_NEWRENO};
const struct toe_cc_ops toe_cc_cubic = {.name = "cubic", .id = TOE_CC_CUBIC};
