/*
 * zqld_http.h -- zqld's HTTP API (runtime services): ingest over HTTP, status, health.
 *
 * The server knows nothing of the event log or the scheduler: the daemon hands it
 * callbacks. It decodes and validates request bodies itself (runtime/ingest.h), reports
 * the rejected elements, gives the valid events of one request to `submit` in one call,
 * and answers with the assigned `_seq` range. Routes (docs/zqld.md "HTTP API"):
 *
 *   POST /api/v1/events   NDJSON (application/x-ndjson), a JSON array or one JSON object
 *                         (application/json); Content-Encoding gzip accepted
 *   GET  /api/v1/status   the daemon's status document (the `status` callback)
 *   GET  /api/v1/health   {"ok": true}; never needs a token (load balancers)
 *
 * Answers are JSON (application/json), errors included ({"error": "..."}); only requests
 * libmicrohttpd refuses before they reach zqld (no request line, a bad Content-Length, a
 * header block over 64 KiB, HTTP/2.0) get its own short HTML 400 / 431 / 505 pages:
 *   200  events: some accepted (or an empty body) -- {"accepted": N, "rejected": M,
 *        "first": A, "last": B, "errors": [{"index": i, "line": l, "column": c,
 *        "error": "..."}]} (first/last null when nothing was accepted; at most
 *        ZQL_HTTP_MAX_ERRORS errors listed, `rejected` counts them all)
 *   400  events: every element rejected (the same body), or a body that cannot be read at
 *        all: {"error": "...", "line": l, "column": c} (line/column when known)
 *   401  a token is configured and the request has none or a wrong one
 *        (WWW-Authenticate: Bearer)
 *   404  no such route; 405 wrong method (Allow); 413 body over max_body; 415 a
 *        Content-Encoding other than gzip / identity
 *   500  submit or status failed (the message)
 *   503  submit said busy, or the bodies buffered at once exceed max_pending_bytes
 *        (Retry-After: 1)
 *
 * A request with a body that is refused after its headers (401, 404, 405, 413, 415) is
 * answered at once and its connection closed (the body is not read); other answers keep
 * the connection alive.
 *
 * Threads: libmicrohttpd (MHD) serves every connection on a thread of its own, at most
 * `threads` connections at once (more are accepted and closed at once). `submit`,
 * `rejected` and `status` are called from these threads concurrently and may block
 * (submit waits for the log): a blocked request holds up only its own connection.
 * Idle connections are closed after ZQL_HTTP_TIMEOUT_S seconds (slowloris).
 *
 * Errors: 0 or a negative ZQL_E_* with one message appended to `err` (may be NULL).
 */
#ifndef ZQL_ZQLD_HTTP_H
#define ZQL_ZQLD_HTTP_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"
#include "runtime/ingest.h"

#define ZQL_HTTP_MAX_ERRORS 100   /* errors listed per response */
#define ZQL_HTTP_TIMEOUT_S 30     /* idle connection timeout (seconds) */
#define ZQL_HTTP_THREADS_DEFAULT 256 /* connections (= threads) served at once */

/* What `submit` returns when the daemon cannot take the events now (a full queue,
 * draining): ZQL_E_BUSY or ZQL_HTTP_BUSY (the same meaning; kept for callers written
 * before E0016 existed). The request is answered 503 with Retry-After: 1 and the
 * callback's message. */
#define ZQL_HTTP_BUSY (-9001)

/* What the daemon's submit callback fills in for one request. */
typedef struct zql_http_events_result {
  int64_t first, last;  /* _seq range of the accepted events (ignored when accepted == 0) */
  size_t accepted, rejected;
  /* events the daemon refused (the log's own checks): index into the submitted array and
   * the message. `errors` and every `why` are zql_malloc()ed by the callback and freed by
   * the server (zql_http_events_result_release); at most ZQL_HTTP_MAX_ERRORS are read. */
  struct zql_http_event_error {
    size_t index;
    char *why;
  } *errors;
  size_t nerrors;
} zql_http_events_result_t;

/* Free errors and their messages; the result is zeroed. */
void zql_http_events_result_release(zql_http_events_result_t *res);

typedef struct zql_http_opts {
  /* "127.0.0.1:8081", "[::1]:8081", "0.0.0.0:8081", "*:8081" (every interface, IPv6 and
   * IPv4), "localhost:8081"; port 0 picks a free port (zql_http_port tells which). */
  const char *listen;
  /* bearer tokens, NULL-terminated (NULL or {NULL}: no auth); empty strings never match.
   * Copied by zql_http_start. */
  const char *const *tokens;
  uint64_t max_body;          /* request body as received, bytes (0: 64 MiB); more: 413 */
  zql_ingest_limits_t limits; /* per-event limit; its max_body_bytes is replaced by max_body
                                 (a gzip body may inflate to 16 times that) */
  unsigned threads;           /* connections served at once, one thread each
                                 (0: ZQL_HTTP_THREADS_DEFAULT) */
  /* bodies buffered at once over all connections (0: 4 * max_body); past it, 503 */
  uint64_t max_pending_bytes;
  /* POST /api/v1/events: the valid events of one request, in order (n > 0). Returns 0 and
   * fills res; or ZQL_E_BUSY / ZQL_HTTP_BUSY (503 + Retry-After: 1); or another error
   * (500 with the message in err). NULL: the route answers 404. */
  int (*submit)(void *arg, const bson_t *const *events, size_t n, zql_http_events_result_t *res,
                zql_strbuf_t *err);
  /* every rejected element of a readable body, in body order, before submit (dead-letter
   * file, counters); item->event is NULL. Not called for a body that cannot be read at
   * all (400 with its error: nothing of it is logged). peer: "ADDR:PORT" or NULL. May be
   * NULL. */
  void (*rejected)(void *arg, const zql_ingest_item_t *item, const char *peer);
  /* GET /api/v1/status: append one JSON document to json; a negative ZQL_E_* instead:
   * 500 with that code's message. NULL: the route answers 404. */
  int (*status)(void *arg, zql_strbuf_t *json);
  void *arg;
} zql_http_opts_t;

typedef struct zql_http zql_http_t;

/* Bind and start serving. ZQL_E_USAGE for a bad listen address, ZQL_E_IO when it cannot
 * be bound ("cannot listen on 127.0.0.1:8081: Address already in use") or the server
 * cannot start, ZQL_E_NOMEM. */
int zql_http_start(const zql_http_opts_t *opts, zql_http_t **out, zql_strbuf_t *err);

/* The bound TCP port. */
int zql_http_port(const zql_http_t *h);

/* Drain: stop accepting connections (new ones are refused), answer further requests on
 * open connections with Connection: close, and wait until the requests being served are
 * done (at most ZQL_HTTP_TIMEOUT_S seconds). Idempotent. */
void zql_http_quiesce(zql_http_t *h);

/* Stop (closing every connection; callbacks running are waited for) and free. NULL: no-op. */
void zql_http_stop(zql_http_t *h);

/* A minimal HTTP/1.1 GET client (for `zql status`): url "http://HOST[:PORT]/PATH" (HOST a
 * name, an IPv4 address or [IPv6]; PORT default 80), token NULL or the bearer token,
 * timeout_ms bounds connect + request + response (<= 0: 10 s). On success returns 0 with
 * the status code in *status and the body (Content-Length, chunked or up to the close; at
 * most 64 MiB) appended to body. ZQL_E_USAGE for a bad URL (https is not supported),
 * ZQL_E_IO for a connection or protocol failure or the timeout, ZQL_E_NOMEM. */
int zql_http_get(const char *url, const char *token, int timeout_ms, int *status,
                 zql_strbuf_t *body, zql_strbuf_t *err);

#endif
