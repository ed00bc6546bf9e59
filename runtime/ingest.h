/*
 * ingest.h -- decoding and validating incoming events (zqld ingest, runtime services).
 *
 * Every zqld endpoint turns what it receives into events through this file, so the rules
 * are the same everywhere (docs/zqld.md "Event validation and the dead-letter file"):
 *
 *   zql_ingest_bson   one BSON document: a ZeroMQ frame of :6543, or one event frame of an
 *                     acked batch (:6546)
 *   zql_ingest_json   one JSON object: a ZeroMQ frame of :6544
 *   zql_ingest_body   an HTTP request body: NDJSON or a JSON array of objects, maybe gzip
 *
 * The rules (checked in this order; the first failure is the reason):
 *   1. structure: a valid BSON document whose length prefix matches the frame (strings
 *      and keys UTF-8), or one JSON object (UTF-8, RFC 8259 syntax, then MongoDB extended
 *      JSON as libbson reads it: {"$date": ...}, {"$numberLong": "5"}, {"$oid": ...}).
 *      JSON only: Zarkov's {"$datetime": seconds} (a number, fraction allowed) is replaced,
 *      wherever it is in the document, by a BSON date (ms, rounded) -- runtime/ioformat.h.
 *   2. size: the event as it would be logged is at most max_event_bytes.
 *   3. `$command` (top level) is removed. "event_noval" (Zarkov's "already validated by the
 *      client") skips the schema checks of rule 6 only; any other value is rejected:
 *      `unknown $command 'X'`.
 *   4. `_id` and `_seq` are assigned by the server: `field '_id' is assigned by the server`.
 *   5. `timestamp`: absent (the event log stamps the time of writing; this file adds
 *      nothing), or a BSON date or BSON Timestamp; else `field 'timestamp' is not a date
 *      (it is a string)`.
 *   6. `type`: absent or a string; `context`: absent or a document (Zarkov's schema):
 *      `field 'context' is a string; it must be a document`.
 *   A special field (`$command`, `_id`, `_seq`, `timestamp`, `type`, `context`) given
 *   twice at the top level is rejected: `field 'type' appears twice`.
 * Other fields are kept unchanged and in order (Zarkov dropped unknown top-level fields;
 * zql keeps them).
 *
 * Results: 0 (accepted) or ZQL_E_BAD_EVENT (rejected, with one message in `why` that names
 * the field or the position, lowercase, no trailing period) or ZQL_E_NOMEM. `why` is
 * appended to, never reset, and may be NULL. `reason` (may be NULL) receives the reason
 * class, for counters and for the dead-letter file.
 *
 * Reentrant: no globals, no locks; any number of threads may call these at once.
 */
#ifndef ZQL_INGEST_H
#define ZQL_INGEST_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"

#define ZQL_INGEST_MAX_EVENT_DEFAULT (1u << 20)          /* 1 MiB */
/* The hard limit: 16 MiB minus room for the `_id` and `timestamp` fields the event log
 * adds, so an event accepted here is never refused by the log for its size. */
#define ZQL_INGEST_MAX_EVENT_HARD ((16u << 20) - 64)
#define ZQL_INGEST_MAX_BODY_DEFAULT ((uint64_t)64 << 20)  /* 64 MiB, [http] max_body */
#define ZQL_INGEST_MAX_INFLATED ((uint64_t)1 << 30)      /* never inflate more than 1 GiB */

typedef struct zql_ingest_limits {
  uint32_t max_event_bytes; /* 0: ZQL_INGEST_MAX_EVENT_DEFAULT; larger than HARD: HARD */
  uint64_t max_body_bytes;  /* zql_ingest_body: largest body as received (compressed);
                               0: ZQL_INGEST_MAX_BODY_DEFAULT. A gzip body may inflate to
                               16 times this, never more than ZQL_INGEST_MAX_INFLATED. */
} zql_ingest_limits_t;

#define ZQL_INGEST_LIMITS_INIT {ZQL_INGEST_MAX_EVENT_DEFAULT, ZQL_INGEST_MAX_BODY_DEFAULT}

/* Why an event was rejected (the class; the message says exactly what). */
typedef enum zql_ingest_reason {
  ZQL_INGEST_OK = 0,       /* accepted */
  ZQL_INGEST_MALFORMED,    /* not a BSON document / not JSON / not an object / bad UTF-8 /
                              bad extended JSON or $datetime */
  ZQL_INGEST_TOO_LARGE,    /* larger than max_event_bytes */
  ZQL_INGEST_COMMAND,      /* $command other than event_noval (or not a string) */
  ZQL_INGEST_RESERVED,     /* _id or _seq given by the client */
  ZQL_INGEST_TIMESTAMP,    /* timestamp is not a date */
  ZQL_INGEST_SCHEMA,       /* type not a string, context not a document, duplicate field */
  ZQL_INGEST_LOG,          /* for callers: the event log refused it (zql_evlog_append) */
  ZQL_INGEST_REASONS       /* number of classes */
} zql_ingest_reason_t;

/* "ok", "malformed", "too_large", "command", "reserved", "timestamp", "schema", "log":
 * stable names for metrics and `zql status`. */
const char *zql_ingest_reason_name(zql_ingest_reason_t r);

/* Does a rejection of this class leave the document as received in `out`? True for
 * COMMAND, RESERVED, TIMESTAMP, SCHEMA; false for MALFORMED and TOO_LARGE (the caller
 * dead-letters the raw bytes instead). */
bool zql_ingest_reason_has_doc(zql_ingest_reason_t r);

/* One BSON document (a frame of `len` bytes). `out` is initialised by the call in every
 * case and must be bson_destroy()ed by the caller. Accepted: `out` is the event to log
 * ($command removed); a frame accepted unchanged (no $command) is not copied: `out` is a
 * read-only view of `data`, which must outlive it. Rejected: `out` is the document as received when
 * zql_ingest_reason_has_doc(reason), else empty. Messages, for example:
 *   not a BSON document: length prefix 1234 does not match the frame's 99 bytes
 *   not a BSON document: the frame has 3 bytes; a document has at least 5
 *   event is 2000000 bytes; the limit is 1048576 (max_event_bytes)
 *   field 'context' is a string; it must be a document */
int zql_ingest_bson(const void *data, size_t len, const zql_ingest_limits_t *limits, bson_t *out,
                    zql_ingest_reason_t *reason, zql_strbuf_t *why);

/* One JSON object (a frame of `len` bytes; need not be NUL-terminated; a UTF-8 byte-order
 * mark and surrounding white space are allowed, a second value after the object is not).
 * `out` as for zql_ingest_bson. Structural errors carry the position:
 *   line 1, column 12: expected ',' or '}' after an object member
 *   line 1, column 1: expected a JSON object, found an array */
int zql_ingest_json(const char *text, size_t len, const zql_ingest_limits_t *limits, bson_t *out,
                    zql_ingest_reason_t *reason, zql_strbuf_t *why);

/* {-- HTTP bodies -- */

/* One element of a body, handed to the callback in body order. Pointers are valid only
 * during the call. */
typedef struct zql_ingest_item {
  size_t index;                /* 0-based element number (blank NDJSON lines do not count) */
  uint64_t line, column;       /* where the element starts in the (inflated) body, 1-based */
  const bson_t *event;         /* accepted: the event to log; rejected: NULL */
  const bson_t *received;      /* rejected with zql_ingest_reason_has_doc(): the document as
                                  received; else NULL */
  const void *raw;             /* the element's bytes in the inflated body */
  size_t raw_len;
  zql_ingest_reason_t reason;  /* ZQL_INGEST_OK when accepted */
  const char *why;             /* rejected: "line 3, column 1: field 'type' is a number; it
                                  must be a string"; accepted: "" */
} zql_ingest_item_t;

/* Return 0 to go on; anything else stops zql_ingest_body, which returns that value. */
typedef int (*zql_ingest_each_fn)(void *arg, const zql_ingest_item_t *item);

/* An HTTP request body of `len` bytes. gzip: the body is gzip-compressed (Content-Encoding:
 * gzip; several members are read through); it is inflated with a cap of 16 times
 * limits->max_body_bytes and ZQL_INGEST_MAX_INFLATED, past which the body is an error.
 * Format: a JSON array of objects when the first non-space byte is '['; otherwise one JSON
 * object (which may span lines) when content_type is application/json; otherwise NDJSON,
 * one object per line, blank lines skipped (content_type application/x-ndjson, NULL or any
 * other). Parameters of the content type (";charset=utf-8") are ignored.
 * Every element is validated like a JSON frame and `each` is called for it, accepted or
 * not; a bad element never stops the body (an NDJSON line that is not JSON, an array
 * element that is not an object or fails a rule).
 * Returns 0 when the whole body was read (even if every element was rejected), or
 *   ZQL_E_BAD_EVENT: the body itself is malformed (larger than the limit, corrupt or
 *     truncated gzip, inflated size over the cap, a JSON syntax error that breaks the
 *     array or a trailing value after the object); elements before the error have been
 *     passed to `each`; `err` gets "gzip: ..." or "line 7, column 3: ...";
 *   ZQL_E_NOMEM; or the callback's non-zero value.
 * `n_elements` (may be NULL) receives the number of elements passed to `each`. */
int zql_ingest_body(const void *data, size_t len, bool gzip, const char *content_type,
                    const zql_ingest_limits_t *limits, zql_ingest_each_fn each, void *arg,
                    size_t *n_elements, zql_strbuf_t *err);

/* }-- */

#endif
