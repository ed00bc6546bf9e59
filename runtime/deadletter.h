/*
 * deadletter.h -- the dead-letter file of rejected events (zqld ingest, runtime services).
 *
 * A rejected event never stops ingest: the endpoint counts it, answers it where the
 * protocol has a reply, and appends it here. DIR (default DATA/deadletter) holds one file
 * per UTC day of receipt, DIR/YYYY-MM-DD.ndjson, each line one canonical extended JSON
 * object (libbson's bson_as_canonical_extended_json, so bson_new_from_json reads it back):
 *
 *   {"received": {"$date": {"$numberLong": "1764013709123"}}, "source": "bson:6543",
 *    "peer": "tcp://10.0.0.7:50412", "reason": "field 'type' is a number; it must be a
 *    string", "class": "schema", "event": {...the document as received...}}
 *
 * "peer" is omitted when unknown. When the event did not parse (or was too large) the line
 * has "raw": "<base64 of the bytes>" (RFC 4648, with padding) instead of "event"; at most
 * 64 KiB of raw bytes are kept, and a cut line says "raw_truncated": true and
 * "raw_size": <the full size>. Text fields that are not valid UTF-8 have each bad byte
 * replaced by U+FFFD.
 *
 * Lines are buffered in memory by zql_deadletter_add and written with one write(2) per
 * file by zql_deadletter_flush (zqld flushes once per writer batch, with fdatasync when
 * the log's fsync policy is not "none"). A line never straddles two files: a line of a new
 * UTC day first flushes and fdatasyncs the previous day's file. Opening a day's file
 * appends to it; if its last line is torn (a crash in the middle of a write: no trailing
 * newline) a newline is written first, so every complete line stays parseable and the
 * torn fragment is one bad line.
 *
 * Threads: a zql_deadletter_t belongs to one thread (zqld's writer thread); there is no
 * locking inside. The counters may be read by other threads only through the owner (or
 * with the usual caveat that they are plain uint64_t loads).
 *
 * Errors: 0 or a negative ZQL_E_* (ZQL_E_IO names the file and the system error,
 * ZQL_E_NOMEM), with one message appended to `err` (may be NULL). After a write error the
 * pending lines are dropped (counted in write_errors) and the next add starts afresh, so a
 * full disk does not grow memory without bound.
 */
#ifndef ZQL_DEADLETTER_H
#define ZQL_DEADLETTER_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"
#include "runtime/ingest.h"

#define ZQL_DEADLETTER_RAW_MAX (64u * 1024) /* raw bytes kept per line */

typedef struct zql_deadletter zql_deadletter_t;

/* Create DIR (and its parents) if needed, mode 0750. No file is opened until the first
 * add. Returns 0, ZQL_E_IO or ZQL_E_NOMEM. */
int zql_deadletter_open(const char *dir, zql_deadletter_t **out, zql_strbuf_t *err);

/* Buffer one line. now_ms: the time of receipt (UTC ms; picks the day's file). source:
 * "bson:6543", "json:6544", "acked:6546" or "http". peer: the client's address or NULL.
 * cls: the reason class (counted). reason: the message. event: the document as received,
 * or NULL; then raw/rawlen are the bytes as received (rawlen 0 writes "raw": "").
 * Returns 0, ZQL_E_NOMEM, or ZQL_E_IO when a day change had to flush the previous file. */
int zql_deadletter_add(zql_deadletter_t *dl, int64_t now_ms, const char *source,
                       const char *peer, zql_ingest_reason_t cls, const char *reason,
                       const bson_t *event, const void *raw, size_t rawlen, zql_strbuf_t *err);

/* Write the buffered lines (write(2), retrying short writes and EINTR); with sync,
 * fdatasync the file too. A no-op when nothing is buffered (and sync does nothing then
 * either). Returns 0 or ZQL_E_IO. */
int zql_deadletter_flush(zql_deadletter_t *dl, bool sync, zql_strbuf_t *err);

/* Flush (without fdatasync; call zql_deadletter_flush first to know the outcome), close
 * and free. NULL is a no-op. */
void zql_deadletter_close(zql_deadletter_t *dl);

/* Lines added since open with this class (ZQL_INGEST_OK: all classes together). */
uint64_t zql_deadletter_count(const zql_deadletter_t *dl, zql_ingest_reason_t cls);

typedef struct zql_deadletter_stats {
  uint64_t lines;                          /* added since open */
  uint64_t by_class[ZQL_INGEST_REASONS];   /* [ZQL_INGEST_OK] unused (0) */
  uint64_t bytes_written;                  /* bytes written to files */
  uint64_t write_errors;                   /* failed flushes (their lines are lost) */
  uint64_t lines_lost;                     /* lines dropped by failed flushes */
} zql_deadletter_stats_t;

void zql_deadletter_stats(const zql_deadletter_t *dl, zql_deadletter_stats_t *out);

/* The directory, as given to open. */
const char *zql_deadletter_dir(const zql_deadletter_t *dl);

#endif
