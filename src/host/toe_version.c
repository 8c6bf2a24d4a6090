/*
 * toe_version (toe/toe.h): the version of the libtoe that is loaded, as opposed to the TOE_VERSION
 * a program was compiled against.
 */
#include "toe/toe.h"

const char *toe_version(void)
{
  return TOE_VERSION;
}
