/* fuzz_engine.c with queues longer than its 64-buffer pool (see FUZZ_POOL_BOUND there). */
#define FUZZ_POOL_BOUND 1
#include "fuzz_engine.c"
