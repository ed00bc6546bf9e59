/*
 * clock.h -- the two clocks of zql (layer 0): wall time for what is stored or shown
 * (event stamps, run records, logs) and monotonic time for timeouts and durations.
 */
#ifndef ZQL_CLOCK_H
#define ZQL_CLOCK_H

#include "runtime/base/zql_common.h"

int64_t zql_wall_ms(void); /* CLOCK_REALTIME, milliseconds since the epoch (UTC) */
int64_t zql_mono_ms(void); /* CLOCK_MONOTONIC, milliseconds from an arbitrary origin */
/* zql_wall_ms as an injectable clock (the `clock_ms(arg)` options of the event log, the
 * ack journal and the ingest service; their tests pass their own) */
int64_t zql_wall_clock(void *arg);

#endif
