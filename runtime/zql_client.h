/*
 * zql_client.h -- the C client of zqld's acknowledged ingest endpoint (libzql, installed).
 *
 * A producer hands events (BSON documents or JSON texts) to a zql_client_t; the client
 * groups them into batches and sends each batch as one request of the acked protocol to
 * zqld's ROUTER socket (default tcp://127.0.0.1:6546; docs/zqld.md, "the acked ingest
 * protocol"). zqld answers a batch once its events are durable in the event log, with the
 * _seq range they got and the reasons of the events it rejected.
 *
 * Delivery is exactly-once across retries: every client has a random 16-byte id, every
 * batch a number (1, 2, ...; strictly increasing for the life of the client), and the
 * client keeps each batch until it is acknowledged. A batch whose answer does not come
 * within ack_timeout_ms, whose connection broke, or that the server answered "busy" or
 * "draining" (after an exponential backoff with jitter) is sent again with the SAME
 * number; the server remembers which (client, batch) pairs it has logged and answers a
 * repeat with the original range (`dup`) instead of logging it twice. So a server that is
 * killed and restarted in the middle of a stream loses nothing it acknowledged and
 * duplicates nothing.
 *
 * Usage:
 *
 *   zql_client_opts_t o;
 *   zql_client_opts_init(&o);
 *   o.on_reject = print_reject;                  // optional: per-event rejections
 *   zql_client_t *c;
 *   char err[ZQL_CLIENT_ERRLEN];
 *   if (zql_client_connect("tcp://127.0.0.1:6546", &o, &c, err) != 0) { ...err... }
 *   for (...) zql_client_send(c, doc);           // or zql_client_send_json(c, text)
 *   zql_client_stats_t st;
 *   int rc = zql_client_flush(c, 30000, &st);    // every batch acknowledged, or a timeout
 *   zql_client_close(c);
 *
 * Conventions:
 *   - Functions return 0 or a negative ZQL_CLIENT_E_* code, and zql_client_last_error()
 *     says what happened in a sentence. Nothing here exits, aborts or prints.
 *   - Thread-compatible: one client object belongs to one thread at a time; different
 *     objects are independent (there is no global state). Callbacks run inside send /
 *     poll / flush / ping, in the calling thread, and must not call the client.
 *   - Memory: a client holds at most max_inflight_batches batches plus the open one
 *     (each at most batch_max_bytes, or one larger event).
 *   - Order: batches are appended to the log in the order the server receives them; a
 *     retried batch may land after a later one. With max_inflight_batches = 1 the log
 *     order is the send order.
 *   - Linking: -lzql plus $(pkg-config --libs libzmq libbson-1.0).
 */
#ifndef ZQL_CLIENT_H
#define ZQL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* zqld's default acked ingest endpoint. */
#define ZQL_CLIENT_DEFAULT_ENDPOINT "tcp://127.0.0.1:6546"
/* Length of a CURVE key in Z85 text (32 bytes); buffers need one more byte for the NUL. */
#define ZQL_CLIENT_KEY_LEN 40
/* Size of the error buffers that zql_client_connect and zql_client_read_keyfile fill. */
#define ZQL_CLIENT_ERRLEN 256
/* The largest event the client accepts (MongoDB's document limit, zqld's hard limit). */
#define ZQL_CLIENT_MAX_EVENT (16u * 1024 * 1024)

/* Return codes. The first three have the values of ZQL_E_NOMEM, ZQL_E_IO and ZQL_E_USAGE
 * (runtime/base/errcodes.txt), so code that handles those needs nothing new. */
enum {
  ZQL_CLIENT_OK = 0,
  ZQL_CLIENT_E_NOMEM = -1,     /* out of memory; the call had no effect */
  ZQL_CLIENT_E_IO = -2,        /* a key file could not be read, no random bytes */
  ZQL_CLIENT_E_INVALID = -3,   /* a bad argument: option, endpoint, key, JSON, event size */
  ZQL_CLIENT_E_ZMQ = -101,     /* ZeroMQ failed (the message has zmq_strerror's text) */
  ZQL_CLIENT_E_TIMEOUT = -102, /* the deadline passed; unacknowledged batches are kept */
  ZQL_CLIENT_E_REFUSED = -103  /* the server refused a batch as a whole (a permanent
                                  error such as "bad header"); its events are not logged */
};

typedef struct zql_client zql_client_t;

/* What the server answered for one batch (the on_ack callback). */
typedef struct zql_client_ack {
  int64_t batch;        /* the batch number */
  uint64_t first_index; /* client-wide index of its first event (0 = the first event ever
                           handed to this client, counting every send call) */
  uint32_t events;      /* events in the batch (0: a ping) */
  uint32_t accepted;    /* logged, with _seq first_seq..last_seq in batch order */
  uint32_t rejected;    /* refused by the server's checks (dead-lettered there) */
  int64_t first_seq;    /* 0 when accepted == 0 */
  int64_t last_seq;
  bool dup;             /* the server had logged this batch before (a retry); first/last
                           are the original ones, and its per-event errors are not
                           repeated (they count in rejected_unlisted) */
} zql_client_ack_t;

/* A rejected event: `index` as in zql_client_ack_t.first_index, `event` the document
 * that was sent (valid during the call), `reason` the server's message, e.g. "field
 * 'timestamp' is not a date", or "batch refused by the server: <error>". */
typedef void (*zql_client_reject_fn)(void *arg, uint64_t index, const bson_t *event,
                                     const char *reason);
typedef void (*zql_client_ack_fn)(void *arg, const zql_client_ack_t *ack);

typedef struct zql_client_opts {
  /* CURVE (zmq_curve(7)): all three are Z85 text. With server_public_key set the
   * connection is encrypted and authenticated; public_key/secret_key are the client's
   * long-term pair (what zqld's curve_allow_file lists); with only secret_key the public
   * key is derived; with neither a fresh pair is made (accepted only by a server without
   * an allow list). Client keys without a server key are an error. Copied at connect. */
  const char *server_public_key;
  const char *public_key;
  const char *secret_key;

  uint32_t batch_max_events;     /* a batch is sent when it has this many (1000) */
  uint32_t batch_max_bytes;      /* ... or when the next event would pass this (1 MiB);
                                    an event larger than this travels alone */
  int64_t batch_max_delay_ms;    /* ... or when its first event is this old at a send or
                                    poll call (100; < 0: never by age) */
  int64_t ack_timeout_ms;        /* resend a batch not answered within this (5000) */
  uint32_t max_inflight_batches; /* sent but unacknowledged batches at most (64) */
  int64_t send_timeout_ms;       /* how long send / send_json / send_batch may wait for a
                                    free slot when max_inflight_batches are out (-1:
                                    as long as needed) */
  int64_t backoff_min_ms;        /* first delay after "busy"/"draining" (50), doubling... */
  int64_t backoff_max_ms;        /* ... up to this (5000); +-25% jitter */
  int linger_ms;                 /* ZMQ_LINGER of the socket at close (0) */

  zql_client_reject_fn on_reject; /* NULL: rejections are only counted */
  zql_client_ack_fn on_ack;       /* NULL: acknowledgements are only counted */
  void *cb_arg;                   /* passed to both callbacks */

  void *zmq_context; /* a ZeroMQ context to use (not terminated at close); NULL: own one */
} zql_client_opts_t;

/* Counters since connect. */
typedef struct zql_client_stats {
  uint64_t events;            /* events handed to the send functions */
  uint64_t accepted;          /* acknowledged as logged */
  uint64_t rejected;          /* acknowledged as rejected (all of them) */
  uint64_t rejected_unlisted; /* of those, the ones the server did not list (at most 100
                                 are listed per batch; dup answers list none): their
                                 reasons are in zqld's dead-letter file */
  uint64_t refused;           /* events of batches refused as a whole: not logged */
  uint64_t pending;           /* handed in, not acknowledged yet (open batch + in flight) */
  int64_t first_seq;          /* smallest and largest _seq acknowledged; 0 when none */
  int64_t last_seq;
  uint64_t batches;           /* batches acknowledged (pings included) */
  uint64_t sends;             /* requests sent, resends included */
  uint64_t resends;           /* requests sent again (timeout, reconnect, busy) */
  uint64_t dups;              /* answers with dup: true */
  uint64_t busy;              /* answers "busy" or "draining" */
} zql_client_stats_t;

/* The defaults listed above. */
void zql_client_opts_init(zql_client_opts_t *o);

/* Create a client and connect it to `endpoint` (a ZeroMQ endpoint such as
 * "tcp://host:6546"; NULL: ZQL_CLIENT_DEFAULT_ENDPOINT). opts may be NULL (defaults).
 * Connecting does not wait for the server: it may start later. Returns 0 and *out, or an
 * error with a message in errbuf (ZQL_CLIENT_ERRLEN bytes; may be NULL) and *out NULL. */
int zql_client_connect(const char *endpoint, const zql_client_opts_t *opts,
                       zql_client_t **out, char *errbuf);

/* Append one event (copied) to the open batch; a full batch is sent. May wait for a free
 * slot (send_timeout_ms): on ZQL_CLIENT_E_TIMEOUT the event was not taken. An event
 * larger than ZQL_CLIENT_MAX_EVENT is ZQL_CLIENT_E_INVALID. */
int zql_client_send(zql_client_t *c, const bson_t *event);
/* The same for one JSON object: MongoDB extended JSON ({"$date": ...}, {"$numberLong":
 * ...}) and Zarkov's {"$datetime": seconds since 1970} (becomes a BSON date). Invalid
 * JSON or anything but one object is ZQL_CLIENT_E_INVALID, with the parser's message. */
int zql_client_send_json(zql_client_t *c, const char *json);
/* zql_client_send for each of docs[0..n); *taken (may be NULL) tells how many were taken
 * when it returns an error. */
int zql_client_send_batch(zql_client_t *c, const bson_t *const *docs, size_t n,
                          size_t *taken);

/* Do the pending work without adding events: send an open batch that is older than
 * batch_max_delay_ms, read answers (calling the callbacks), resend what timed out; wait
 * up to timeout_ms (0: do not wait) while batches are in flight. Returns 0 (also when
 * batches are still in flight at the end) or a fatal error. */
int zql_client_poll(zql_client_t *c, int64_t timeout_ms);

/* Send the open batch and wait until every batch is acknowledged or timeout_ms passed
 * (< 0: no limit). Returns 0; ZQL_CLIENT_E_TIMEOUT (nothing is lost: a later flush goes
 * on); ZQL_CLIENT_E_REFUSED when a batch was refused as a whole since the last flush (the
 * other batches were still waited for); or a fatal error. `st` (may be NULL) gets the
 * counters either way. */
int zql_client_flush(zql_client_t *c, int64_t timeout_ms, zql_client_stats_t *st);

/* Send an empty batch and wait for its answer: 0 when the server answered within
 * timeout_ms (< 0: no limit), else ZQL_CLIENT_E_TIMEOUT. Open events stay open. */
int zql_client_ping(zql_client_t *c, int64_t timeout_ms);

void zql_client_stats(const zql_client_t *c, zql_client_stats_t *st);
/* The client's random id (the `client` field of every request). */
void zql_client_id(const zql_client_t *c, uint8_t id[16]);
/* The message of the last error or warning ("" when none); valid until the next call. */
const char *zql_client_last_error(const zql_client_t *c);
/* A fixed text for a ZQL_CLIENT_* code. */
const char *zql_client_strerror(int code);

/* Close the socket (waiting up to linger_ms to send what is queued) and free the client.
 * Unacknowledged events are dropped: flush first. NULL is a no-op. */
void zql_client_close(zql_client_t *c);

/* Read a CURVE key file: `zql keygen` output, i.e. lines `public = Z85` and/or
 * `secret = Z85` (blank lines and lines starting with # or ; are ignored), or a file whose
 * only line is a bare Z85 public key. Fills public_z85 (derived from the secret when the
 * file has none) and secret_z85 ("" when the file has no secret); each buffer holds
 * ZQL_CLIENT_KEY_LEN + 1 bytes. A key that is not valid Z85, or a public key that does not
 * belong to the secret, is an error: ZQL_CLIENT_E_INVALID / _IO with "FILE:LINE: ..." in
 * errbuf (may be NULL). */
int zql_client_read_keyfile(const char *path, char *public_z85, char *secret_z85,
                            char *errbuf);

#ifdef __cplusplus
}
#endif

#endif
