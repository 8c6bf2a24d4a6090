#include "testlib.h"
#include "toe/engine.h"

TEST(errno_values_match_linux)
{
  CHECK_EQ(TOE_EINVAL, 22);
}

TEST_MAIN()
