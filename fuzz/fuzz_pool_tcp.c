/* fuzz_tcp.c with windows larger than its 96-buffer pool (see FUZZ_POOL_BOUND there). */
#define FUZZ_POOL_BOUND 1
#include "fuzz_tcp.c"
