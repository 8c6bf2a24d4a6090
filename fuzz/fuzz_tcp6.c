/*
 * fuzz_tcp.c's state-aware TCP target over IPv6 (FUZZ_TCP_V6): the same records, carried by the
 * IPv6 connections of tcp_v6.c. Its seed corpus is fuzz_tcp's (the records do not name a family).
 */
#define FUZZ_TCP_V6 1
#include "fuzz_tcp.c"
