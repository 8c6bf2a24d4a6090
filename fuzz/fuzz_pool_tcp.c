/* fuzz_tcp.c with windows larger than a 64-buffer pool (see FUZZ_POOL_BOUND there). */
#define FUZZ_POOL_BOUND 1
#include "fuzz_tcp.c"
