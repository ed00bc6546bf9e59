/*
 * status.h -- what `zql status` and zqld's GET /api/v1/status report about the event log
 * and the stored aggregates (runtime services). See status.c.
 */
#ifndef ZQL_STATUS_H
#define ZQL_STATUS_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"
#include "runtime/store.h"

/* Append "log": {segments, bytes, first_seq, last_seq} for DATA/events. last_seq < 0:
 * from the file names (the .open segment's count unknown: the reader's). */
int zql_status_log(const char *data_dir, bson_t *parent, zql_strbuf_t *err);

/* Called per aggregate to add the daemon's own fields (schedule state) to its document. */
typedef void (*zql_status_agg_fn)(void *arg, const char *name, bson_t *doc);

/* Append "aggregates": [{name, into, mode, schedule, version, watermark, lag, runs,
 * last_run: {run, kind, status, lo, hi, started, finished, seconds, events, error},
 * error_rows}...] from the store's catalog; lag = log_last_seq - watermark. */
int zql_status_aggs(zql_store_t *s, int64_t log_last_seq, bson_t *parent, zql_status_agg_fn fn,
                    void *arg, zql_strbuf_t *err);

/* Print a status document (the JSON of GET /api/v1/status, or one built offline) as
 * text: a summary of ingest and the log, and one line per aggregate. */
void zql_status_print(const bson_t *status, FILE *f);

#endif
