/*
 * version.c -- libzql's version string (runtime services layer).
 */
#include "runtime/base/zql_common.h"

#include "runtime/zql.h"

const char *zql_version(void)
{
  return PACKAGE_VERSION;
}
