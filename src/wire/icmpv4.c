/*
 * ICMPv4 messages (RFC 792).
 */
#include "wire/icmpv4.h"

#include "common/byteorder.h"
#include "toe/errno.h"

#define ICMP_TIMESTAMP_REPLY 14

int toe_icmp_parse(struct toe_icmp_view *v, const uint8_t *p, size_t len)
{
  if (len < TOE_ICMP_HLEN)
    return -TOE_EINVAL;
  v->type = p[0];
  v->code = p[1];
  v->id = 0;
  v->seq = 0;
  v->next_mtu = 0;
  v->pointer = 0;
  /* The meaning of the 4 "rest of header" bytes depends on the type (RFC 792). */
  switch (v->type) {
  case TOE_ICMP_ECHO_REQUEST:
  case TOE_ICMP_ECHO_REPLY:
  case TOE_ICMP_TIMESTAMP:
  case ICMP_TIMESTAMP_REPLY:
    v->id = toe_load_be16(p + 4);
    v->seq = toe_load_be16(p + 6);
    break;
  case TOE_ICMP_DEST_UNREACH:
    /* RFC 1191 4: the low-order 16 bits carry the next-hop MTU for "fragmentation needed". */
    if (v->code == TOE_ICMP_FRAG_NEEDED)
      v->next_mtu = toe_load_be16(p + 6);
    break;
  case TOE_ICMP_PARAM_PROBLEM:
    v->pointer = p[4];
    break;
  default:
    break;
  }
  v->body = p + TOE_ICMP_HLEN;
  v->body_len = len - TOE_ICMP_HLEN;
  return 0;
}

int toe_icmp_is_error(uint8_t type)
{
  switch (type) {
  case TOE_ICMP_DEST_UNREACH:
  case TOE_ICMP_SOURCE_QUENCH:
  case TOE_ICMP_REDIRECT:
  case TOE_ICMP_TIME_EXCEEDED:
  case TOE_ICMP_PARAM_PROBLEM:
    return 1;
  default:
    return 0;
  }
}

void toe_icmp_write_hdr(uint8_t *p, uint8_t type, uint8_t code, uint32_t rest)
{
  p[0] = type;
  p[1] = code;
  p[2] = 0;
  p[3] = 0;
  p[4] = (uint8_t)(rest >> 24);
  p[5] = (uint8_t)(rest >> 16);
  p[6] = (uint8_t)(rest >> 8);
  p[7] = (uint8_t)rest;
}
