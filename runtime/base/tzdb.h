/*
 * tzdb.h -- the system time-zone database (layer 0).
 *
 * For now: validate IANA zone names against the tzdata files (the analyzer checks every
 * `tz "Zone"` at compile time). The TZif reader that the engine uses for bucketing
 * (RFC 8536) joins this module with the engine issue.
 */
#ifndef ZQL_TZDB_H
#define ZQL_TZDB_H

#include "runtime/base/zql_common.h"

/* The tzdata directory: $ZQL_ZONEINFO, else $TZDIR, else the configured default. */
const char *zql_tzdb_dir(void);
/* True when `name` is a syntactically safe zone name (no "..", no leading '/', only
 * [A-Za-z0-9_+-/]) and names a TZif file in the tzdata directory ("UTC", "Etc/GMT+5",
 * "America/New_York"). */
bool zql_tzdb_valid(const char *name);
/* Nearest zone name (case-insensitive match, or the same last component under another
 * region) for a hint, written to buf; false when there is none. */
bool zql_tzdb_suggest(const char *name, char *buf, size_t bufsize);

#endif
