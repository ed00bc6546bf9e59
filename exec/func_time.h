/*
 * func_time.h -- what counts as an instant at run time (stage 4; design/ZQL.md R9).
 *
 * The time functions of exec/func_time.c (zql_scalars_time in exec/func.h) and the VM's
 * bucket operator take their time argument through zql_time_of: a BSON date (ms since
 * 1970 UTC), a BSON Timestamp (its seconds, as ms) or an ObjectId (the seconds embedded
 * in its first four bytes, as ms). Numbers and strings are not instants: they need
 * epoch_ms(x), epoch_s(x) or date(s).
 */
#ifndef ZQL_FUNC_TIME_H
#define ZQL_FUNC_TIME_H

#include "runtime/base/zql_common.h"

#include "exec/value.h"

/* The instant of v in ms UTC when v is a DATE, TIMESTAMP or OID; false for anything else
 * (NULL, MISSING and ERROR included: callers handle those first). */
bool zql_time_of(const zql_val_t *v, int64_t *ms);

#endif
