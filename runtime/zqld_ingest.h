/*
 * zqld_ingest.h -- zqld's ZeroMQ ingest endpoints and the writer thread (runtime services).
 *
 * Events come in on up to three ZeroMQ sockets and through zql_ingestd_submit (the HTTP
 * front end), are validated (runtime/ingest.h), and are appended to the event log by one
 * writer thread; rejected events go to the dead-letter file (runtime/deadletter.h).
 *
 *   bson   PULL, one BSON document per frame (Zarkov's :6543, no reply)
 *   json   PULL, one JSON object per frame (Zarkov's :6544, no reply)
 *   acked  ROUTER, the acked protocol of docs/zqld.md (:6546): [ZQA1][header][events...]
 *          answered [ZQA1][reply] once the batch is durable; exactly-once with client
 *          retries through the dedup journal DATA/ingest/acked.jnl (runtime/ackjournal.h)
 *
 * Threads. The socket thread owns every ZeroMQ socket (they are not thread-safe): it
 * reads frames, checks acked request headers, answers `busy` / `draining` / bad requests
 * itself, serves ZAP (CURVE allow-list), and puts received frames, without copying them,
 * on a bounded queue. The writer thread owns the log appends, the journal and the
 * dead-letter file: each cycle takes everything queued, validates it, writes the journal
 * records of its acked batches (fdatasync), appends all valid events as one log batch,
 * syncs the log when the cycle holds acked batches (group commit: one fdatasync for all
 * of them), then replies through an inproc PAIR to the socket thread.
 *
 * Backpressure. The queue holds at most queue_events events and about queue_bytes bytes
 * (counted until the writer is done with them). When it is full the socket thread stops
 * reading the PULL sockets (ZeroMQ's high-water marks then push back on the producers),
 * answers acked requests `ok: false, error: "busy"`, and zql_ingestd_submit returns
 * ZQL_E_BUSY (HTTP 503).
 *
 * The event log must have no other appender while an ingestd runs on it (the writer
 * predicts the _seq range it journals before appending).
 *
 * Errors: 0 or a negative ZQL_E_* with one message in `err` (may be NULL). Messages of
 * the running daemon (CURVE rejections, I/O failures) go through runtime/log.h.
 */
#ifndef ZQL_ZQLD_INGEST_H
#define ZQL_ZQLD_INGEST_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"
#include "runtime/ingest.h"

/* Where events come from (stats, dead-letter "source"). */
typedef enum zql_ingestd_source {
  ZQL_INGESTD_BSON = 0,
  ZQL_INGESTD_JSON,
  ZQL_INGESTD_ACKED,
  ZQL_INGESTD_HTTP,
  ZQL_INGESTD_SOURCES
} zql_ingestd_source_t;

#define ZQL_INGESTD_MAX_ERRORS 100 /* errors listed per acked reply */

typedef struct zql_ingestd_opts {
  zql_evlog_t *log;        /* open for writing, owned by the caller; no other appender */
  zql_evlog_sync_t fsync;  /* the policy the log was opened with */
  const char *data_dir;    /* the journal is DATA/ingest/acked.jnl */
  const char *dead_letter; /* NULL: DATA/deadletter */
  /* ZeroMQ endpoints to bind (NULL or "": off), e.g. "tcp://127.0.0.1:6543" */
  const char *bson, *json, *acked;
  int hwm;                 /* receive high-water mark of each socket; 0: 10000 */
  uint64_t queue_events;   /* 0: 65536 */
  uint64_t queue_bytes;    /* 0: 64 MiB */
  zql_ingest_limits_t limits; /* zeroes: defaults */
  /* CURVE: when curve_secret is set (Z85, 40 characters) every ZeroMQ endpoint is a
   * CURVE server and only the public keys in curve_allow (Z85) may connect. */
  const char *curve_secret;
  const char *const *curve_allow;
  size_t ncurve_allow;
  void *zmq_ctx;           /* NULL: the ingestd makes (and terminates) its own */
  /* Called by the writer thread after each log append (the scheduler's `on event`
   * feed): docs[i] has _seq first_seq + i; they are the events as validated, without the
   * `_id` and stamped `timestamp` the log adds. Must not block for long (it holds up
   * the replies of the cycle). */
  void (*appended)(void *arg, int64_t first_seq, const bson_t *const *docs, size_t n);
  void *appended_arg;
  int64_t (*clock_ms)(void *arg); /* receipt time (dead-letter, journal); NULL: real */
  void *clock_arg;
} zql_ingestd_opts_t;

typedef struct zql_ingestd zql_ingestd_t;

void zql_ingestd_opts_init(zql_ingestd_opts_t *o);

/* Open the journal (recovering it against the log's last _seq), the dead-letter
 * directory, bind the endpoints and start the threads. */
int zql_ingestd_start(const zql_ingestd_opts_t *o, zql_ingestd_t **out, zql_strbuf_t *err);

/* The ZeroMQ context of the endpoints: other sockets of zqld (the notification PUB)
 * must be made in it so the ZAP handler sees them. */
void *zql_ingestd_zmq_context(zql_ingestd_t *d);
/* Make `sock` (of that context, not yet bound) a CURVE server with zqld's key, checked
 * by the ZAP handler; a no-op returning 0 when CURVE is not configured. */
int zql_ingestd_curve_server(zql_ingestd_t *d, void *sock, zql_strbuf_t *err);
/* The endpoint actually bound (a "tcp://127.0.0.1:*" wildcard resolved), or NULL. */
const char *zql_ingestd_endpoint(const zql_ingestd_t *d, zql_ingestd_source_t src);

/* {-- HTTP front end -- */

/* One element of a request: an event to log, or one the front end already rejected
 * (doc NULL: it is counted, dead-lettered with `reason` and `raw`, and listed). */
typedef struct zql_ingestd_event {
  const bson_t *doc;
  zql_ingest_reason_t cls; /* doc NULL: the class */
  const char *reason;      /* doc NULL: why */
  const void *raw;         /* doc NULL: the bytes as received (may be NULL) */
  size_t rawlen;
  const bson_t *received;  /* doc NULL: the document as parsed, when it parsed (the
                              dead-letter line then shows it as "event"), else NULL */
} zql_ingestd_event_t;

typedef struct zql_ingestd_error {
  size_t index; /* into the submitted array */
  char *why;
} zql_ingestd_error_t;

typedef struct zql_ingestd_result {
  int64_t first, last;   /* _seq range of the accepted events (0, 0 when none) */
  size_t accepted, rejected;
  zql_ingestd_error_t *errors; /* all rejected ones, in order */
  size_t nerrors;
} zql_ingestd_result_t;

/* Queue n events from "http" (peer: the client's address or NULL) and wait until they
 * are appended (durable under policy always). Events are validated like a BSON frame.
 * timeout_ms bounds the wait for room in the queue (0: none); then ZQL_E_BUSY, as while
 * draining. Once queued, the call waits for the writer. ZQL_E_IO when the log failed.
 * Release res with zql_ingestd_result_release in every case. */
int zql_ingestd_submit(zql_ingestd_t *d, const zql_ingestd_event_t *ev, size_t n,
                       const char *peer, zql_ingestd_result_t *res, int64_t timeout_ms,
                       zql_strbuf_t *err);
void zql_ingestd_result_release(zql_ingestd_result_t *res);

/* }-- */

typedef struct zql_ingestd_counts {
  uint64_t received, accepted, rejected, bytes;
} zql_ingestd_counts_t;

typedef struct zql_ingestd_stats {
  zql_ingestd_counts_t src[ZQL_INGESTD_SOURCES];
  uint64_t queue_events, queue_bytes; /* now */
  uint64_t busy;            /* acked requests and submits refused for a full queue */
  uint64_t batches_acked;   /* acked requests answered ok */
  uint64_t batches_dup;     /* of which answered dup */
  uint64_t bad_requests;    /* acked requests refused (header, frames) */
  uint64_t curve_denied;    /* ZAP rejections */
  uint64_t log_errors;      /* failed appends / syncs / journal writes */
  uint64_t deadletter_lines, deadletter_lost;
  int64_t last_seq, durable_seq;
  bool draining;
} zql_ingestd_stats_t;

/* "bson:6543"-style names: "bson", "json", "acked", "http". */
const char *zql_ingestd_source_name(zql_ingestd_source_t s);
void zql_ingestd_stats(zql_ingestd_t *d, zql_ingestd_stats_t *out);

/* Stop reading (PULL frames already buffered by ZeroMQ are taken first; acked requests
 * not yet queued are answered "draining"), write and sync everything queued, answer it,
 * then stop the writer. ZQL_E_BUSY when that did not finish within timeout_ms (<= 0:
 * wait as long as it takes); calling it again continues to wait. The ZAP handler keeps
 * serving until zql_ingestd_free. */
int zql_ingestd_drain(zql_ingestd_t *d, int64_t timeout_ms, zql_strbuf_t *err);
/* Drain (without a limit) if not done, stop the threads, close everything but the log. */
void zql_ingestd_free(zql_ingestd_t *d);

#endif
