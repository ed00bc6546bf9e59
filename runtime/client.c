/*
 * client.c -- the client library of zqld's acked ingest protocol (runtime services; the
 * API and its guarantees are in runtime/zql_client.h, the protocol in docs/zqld.md).
 *
 * Where it sits: producers (and `zql send --ack`, runtime/cmd_send.c) link it; it talks
 * to the ROUTER socket of zqld's ingest (runtime/zqld_ingest.c) over a DEALER socket.
 *
 * Wire format, one request per batch (multipart): "ZQA1", a BSON header {client: binary
 * subtype 4 (16 bytes), batch: int64, n: int32}, then n frames of one BSON event each.
 * Answer: "ZQA1", BSON {batch, ok, first, last, accepted, rejected, dup, errors: [{i,
 * error}]} or {batch, ok: false, error}.
 *
 * State machine of a batch: OPEN (collecting events; at most one) -> QUEUED (to be sent
 * at `due`) -> SENT (answer expected by `due` = send time + ack_timeout) -> gone when
 * answered. SENT goes back to QUEUED when its ack timeout passes, when the connection
 * drops (socket monitor: ZMQ_EVENT_DISCONNECTED; the request or its answer went down with
 * the TCP connection), or when the server says "busy"/"draining" (due after an
 * exponential backoff with +-25% jitter, and no other batch is sent before then). An
 * answer is accepted in any state (a late answer to a batch queued for a resend is as
 * good as the next one); an answer for an unknown batch (a second answer to a resent
 * batch) is ignored. This is the Lazy Pirate pattern of the ZeroMQ guide (ch. 4), with
 * the server-side dedup of (client, batch) making retries idempotent.
 *
 * Socket: ZMQ_IMMEDIATE = 1, so requests are only queued to a live connection and
 * zmq_send(DONTWAIT) says EAGAIN while there is none; a QUEUED batch then waits for
 * POLLOUT, which comes when the (re)connection is up. Nothing sent into a dead connection
 * stays unaccounted: the monitor's DISCONNECTED event re-queues every SENT batch and
 * holds all sending until the monitor reports the next successful handshake (the event
 * can overtake the teardown of the dead connection's pipe, so a request sent right after
 * it could still vanish; by the next handshake that pipe is gone). If that report never
 * comes (a monitor queue overflow), sending resumes after ack_timeout_ms anyway. ZMTP
 * heartbeats (1 s, 3 s timeout) notice a peer that vanished without closing TCP.
 */
#include "runtime/base/zql_common.h"

#include "runtime/zql_client.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include "runtime/zmqdl.h"

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/clock.h"
#include "runtime/ioformat.h"

#define MAGIC "ZQA1"
#define MAGIC_LEN 4
#define HEARTBEAT_IVL_MS 1000
#define HEARTBEAT_TIMEOUT_MS 3000
#define RECONNECT_IVL_MAX_MS 2000
#define KEYFILE_MAX (64 * 1024)
#define NEVER INT64_MAX

typedef enum { B_OPEN, B_QUEUED, B_SENT } bstate_t;

typedef struct batch {
  int64_t id;
  uint64_t first_index;
  uint32_t n;
  zql_strbuf_t data; /* the events' BSON, concatenated */
  bstate_t state;
  int64_t due;       /* QUEUED: send at; SENT: ack deadline; OPEN: created at */
  uint32_t attempts; /* requests sent */
  uint32_t busy;     /* busy/draining answers in a row: the backoff exponent */
} batch_t;

struct zql_client {
  zql_client_opts_t o;
  char server_key[ZQL_CLIENT_KEY_LEN + 1];
  char public_key[ZQL_CLIENT_KEY_LEN + 1];
  char secret_key[ZQL_CLIENT_KEY_LEN + 1];
  char *endpoint;
  void *ctx;
  bool own_ctx;
  void *sock;
  void *mon;
  uint8_t id[16];
  uint64_t rng;      /* splitmix64 state for the backoff jitter */
  int64_t next_batch;
  uint64_t next_index;
  batch_t *open;     /* NULL when no event is waiting */
  batch_t **fly;     /* QUEUED and SENT batches, by increasing id */
  uint32_t nfly;
  batch_t **spare;   /* answered batches kept for reuse */
  uint32_t nspare;
  int64_t hold_until; /* after a busy answer: send nothing before this */
  bool connected;     /* a handshake succeeded and no disconnect since */
  int64_t down_until; /* disconnected: send nothing before the next handshake, or this
                         (a fallback in case the monitor dropped the handshake event) */
  bool ever_connected;
  bool refused;       /* a batch was refused since the last flush */
  zql_client_stats_t st;
  char err[ZQL_CLIENT_ERRLEN];
};

/* {==== small helpers */

static int64_t deadline_after(int64_t timeout_ms)
{
  if (timeout_ms < 0)
    return NEVER;
  int64_t now = zql_mono_ms();
  return timeout_ms > NEVER - now ? NEVER : now + timeout_ms;
}

static void vseterr(char *buf, const char *fmt, va_list ap) ZQL_PRINTF(2, 0);
static void vseterr(char *buf, const char *fmt, va_list ap)
{
  vsnprintf(buf, ZQL_CLIENT_ERRLEN, fmt, ap);
}

static int seterr(zql_client_t *c, int code, const char *fmt, ...) ZQL_PRINTF(3, 4);
static int seterr(zql_client_t *c, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vseterr(c->err, fmt, ap);
  va_end(ap);
  return code;
}

static int bufferr(char *errbuf, int code, const char *fmt, ...) ZQL_PRINTF(3, 4);
static int bufferr(char *errbuf, int code, const char *fmt, ...)
{
  if (errbuf) {
    va_list ap;
    va_start(ap, fmt);
    vseterr(errbuf, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* splitmix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number generators",
 * OOPSLA 2014): the jitter only needs to decorrelate clients, not to be secret. */
static uint64_t next_random(zql_client_t *c)
{
  uint64_t z = (c->rng += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Fill buf with random bytes from the kernel (getrandom(2), /dev/urandom before it). */
static bool random_bytes(uint8_t *buf, size_t n)
{
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  if (got == n)
    return true;
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f)
    return false;
  got += fread(buf + got, 1, n - got, f);
  fclose(f);
  return got == n;
}

/* Is s a valid Z85 CURVE key (40 characters that decode to 32 bytes)? */
static bool valid_key(const char *s)
{
  uint8_t raw[32];
  return s && strlen(s) == ZQL_CLIENT_KEY_LEN && zmq_z85_decode(raw, s) != NULL;
}

/* }==== */

/* {==== batches */

static batch_t *batch_get(zql_client_t *c)
{
  batch_t *b;
  if (c->nspare) {
    b = c->spare[--c->nspare];
    zql_strbuf_reset(&b->data);
  } else {
    if (!(b = zql_calloc(1, sizeof *b)))
      return NULL;
    zql_strbuf_init(&b->data);
  }
  b->id = 0;
  b->first_index = c->next_index;
  b->n = 0;
  b->state = B_OPEN;
  b->due = zql_mono_ms();
  b->attempts = 0;
  b->busy = 0;
  return b;
}

static void batch_free(batch_t *b)
{
  if (b) {
    zql_strbuf_release(&b->data);
    zql_free(b);
  }
}

/* Keep b for reuse (at most max_inflight_batches of them), else free it. */
static void batch_put(zql_client_t *c, batch_t *b)
{
  if (c->nspare < c->o.max_inflight_batches && b->data.len <= 2 * (size_t)c->o.batch_max_bytes)
    c->spare[c->nspare++] = b;
  else
    batch_free(b);
}

/* The i-th event of b as a static bson_t (its bytes stay in b). */
static bool batch_event(const batch_t *b, uint32_t i, bson_t *out)
{
  size_t off = 0;
  for (uint32_t k = 0;; k++) {
    if (off + 4 > b->data.len)
      return false;
    uint32_t len;
    memcpy(&len, b->data.buf + off, 4);
    len = BSON_UINT32_FROM_LE(len);
    if (len < 5 || len > b->data.len - off)
      return false;
    if (k == i)
      return bson_init_static(out, (const uint8_t *)b->data.buf + off, len);
    off += len;
  }
}

static void fly_remove(zql_client_t *c, uint32_t k)
{
  memmove(c->fly + k, c->fly + k + 1, (c->nfly - k - 1) * sizeof *c->fly);
  c->nfly--;
}

/* }==== */

/* {==== sending */

/* Send batch b as one request. Returns 1 sent, 0 the socket cannot take it now (no
 * connection: wait for POLLOUT), or ZQL_CLIENT_E_ZMQ / _NOMEM. */
static int send_request(zql_client_t *c, batch_t *b)
{
  bson_t hdr;
  bson_init(&hdr);
  bool ok = bson_append_binary(&hdr, "client", 6, BSON_SUBTYPE_UUID, c->id, 16) &&
            bson_append_int64(&hdr, "batch", 5, b->id) &&
            bson_append_int32(&hdr, "n", 1, (int32_t)b->n);
  if (!ok) {
    bson_destroy(&hdr);
    return seterr(c, ZQL_CLIENT_E_NOMEM, "out of memory building a request header");
  }
  int rc;
  do
    rc = zmq_send(c->sock, MAGIC, MAGIC_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    bson_destroy(&hdr);
    if (errno == EAGAIN)
      return 0;
    return seterr(c, ZQL_CLIENT_E_ZMQ, "sending batch %" PRId64 ": %s", b->id,
                  zmq_strerror(errno));
  }
  /* The first frame decided: the rest of the message goes to the same pipe, and a pipe
   * that breaks meanwhile makes libzmq drop the remainder silently (the batch is then
   * re-queued by the DISCONNECTED event). A multipart message is never half-refused
   * for its high-water mark, which counts whole messages. */
  rc = zmq_send(c->sock, bson_get_data(&hdr), hdr.len, b->n ? ZMQ_SNDMORE : 0);
  bson_destroy(&hdr);
  size_t off = 0;
  for (uint32_t i = 0; rc >= 0 && i < b->n; i++) {
    uint32_t len;
    memcpy(&len, b->data.buf + off, 4);
    len = BSON_UINT32_FROM_LE(len);
    rc = zmq_send(c->sock, b->data.buf + off, len, i + 1 < b->n ? ZMQ_SNDMORE : 0);
    off += len;
  }
  if (rc < 0)
    return seterr(c, ZQL_CLIENT_E_ZMQ, "sending batch %" PRId64 ": %s", b->id,
                  zmq_strerror(errno));
  b->state = B_SENT;
  b->attempts++;
  b->due = zql_mono_ms() + c->o.ack_timeout_ms;
  c->st.sends++;
  if (b->attempts > 1)
    c->st.resends++;
  return 1;
}

/* Send the QUEUED batches that are due, oldest first. Sets *blocked when one waits for
 * the socket (POLLOUT). Returns 0 or a fatal error. */
static int send_due(zql_client_t *c, int64_t now, bool *blocked)
{
  *blocked = false;
  if (now < c->hold_until || now < c->down_until)
    return 0;
  for (uint32_t k = 0; k < c->nfly; k++) {
    batch_t *b = c->fly[k];
    if (b->state != B_QUEUED || b->due > now)
      continue;
    int rc = send_request(c, b);
    if (rc < 0)
      return rc;
    if (rc == 0) {
      *blocked = true;
      return 0;
    }
  }
  return 0;
}

/* SENT batches whose answer is overdue go back to QUEUED. */
static void expire(zql_client_t *c, int64_t now)
{
  for (uint32_t k = 0; k < c->nfly; k++) {
    batch_t *b = c->fly[k];
    if (b->state == B_SENT && b->due <= now) {
      b->state = B_QUEUED;
      b->due = now;
    }
  }
}

/* When the next timer fires: an ack deadline, a resend after a backoff, the end of a
 * busy hold. A QUEUED batch already due has been sent or waits for POLLOUT: no timer. */
static int64_t next_timer(const zql_client_t *c, int64_t now)
{
  int64_t t = NEVER;
  for (uint32_t k = 0; k < c->nfly; k++) {
    const batch_t *b = c->fly[k];
    int64_t d = b->due;
    if (b->state == B_QUEUED) {
      if (d < c->hold_until)
        d = c->hold_until;
      if (d < c->down_until)
        d = c->down_until;
      if (d <= now)
        continue;
    }
    if (d < t)
      t = d;
  }
  return t;
}

/* }==== */

/* {==== answers */

static bool iter_int64(const bson_t *doc, const char *key, int64_t *v)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key))
    return false;
  if (BSON_ITER_HOLDS_INT64(&it))
    *v = bson_iter_int64(&it);
  else if (BSON_ITER_HOLDS_INT32(&it))
    *v = bson_iter_int32(&it);
  else
    return false;
  return true;
}

static bool iter_bool(const bson_t *doc, const char *key, bool *v)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_BOOL(&it))
    return false;
  *v = bson_iter_bool(&it);
  return true;
}

static const char *iter_utf8(const bson_t *doc, const char *key)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
    return NULL;
  return bson_iter_utf8(&it, NULL);
}

static void reject(zql_client_t *c, const batch_t *b, uint32_t i, const char *why)
{
  if (!c->o.on_reject)
    return;
  bson_t ev;
  if (batch_event(b, i, &ev))
    c->o.on_reject(c->o.cb_arg, b->first_index + i, &ev, why);
}

/* Report the errors listed in an answer; returns how many were valid entries. */
static uint32_t report_errors(zql_client_t *c, const batch_t *b, const bson_t *ans)
{
  bson_iter_t it, arr;
  if (!bson_iter_init_find(&it, ans, "errors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
      !bson_iter_recurse(&it, &arr))
    return 0;
  uint32_t listed = 0;
  while (bson_iter_next(&arr)) {
    const uint8_t *data;
    uint32_t len;
    bson_t e;
    if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
      continue;
    bson_iter_document(&arr, &len, &data);
    if (!bson_init_static(&e, data, len))
      continue;
    int64_t i;
    const char *why = iter_utf8(&e, "error");
    if (!iter_int64(&e, "i", &i) || i < 0 || i >= b->n)
      continue;
    listed++;
    reject(c, b, (uint32_t)i, why ? why : "rejected (no reason given)");
  }
  return listed;
}

/* One answer (the BSON of frame 1). Malformed answers are noted and ignored. */
static void handle_answer(zql_client_t *c, const uint8_t *data, size_t len)
{
  bson_t ans;
  int64_t id;
  bool ok;
  if (len > UINT32_MAX || !bson_init_static(&ans, data, len) || !iter_int64(&ans, "batch", &id) ||
      !iter_bool(&ans, "ok", &ok)) {
    seterr(c, 0, "ignored a malformed answer from %s (no batch/ok)", c->endpoint);
    return;
  }
  uint32_t k = 0;
  while (k < c->nfly && c->fly[k]->id != id)
    k++;
  if (k == c->nfly)
    return; /* a second answer to a resent batch */
  batch_t *b = c->fly[k];
  if (!ok) {
    const char *why = iter_utf8(&ans, "error");
    if (!why)
      why = "(no reason given)";
    if (strcmp(why, "busy") == 0 || strcmp(why, "draining") == 0) {
      c->st.busy++;
      int64_t delay = c->o.backoff_min_ms;
      for (uint32_t i = 0; i < b->busy && delay < c->o.backoff_max_ms; i++)
        delay = delay > c->o.backoff_max_ms / 2 ? c->o.backoff_max_ms : 2 * delay;
      b->busy++;
      /* +-25% jitter: delay * [0.75, 1.25) */
      delay = delay * 3 / 4 + (int64_t)(next_random(c) % (uint64_t)(delay / 2 + 1));
      b->state = B_QUEUED;
      b->due = zql_mono_ms() + delay;
      if (b->due > c->hold_until)
        c->hold_until = b->due;
      seterr(c, 0, "the server is %s; retrying batch %" PRId64 " in %" PRId64 " ms", why, id,
             delay);
      return;
    }
    char msg[ZQL_CLIENT_ERRLEN];
    snprintf(msg, sizeof msg, "batch refused by the server: %s", why);
    for (uint32_t i = 0; i < b->n; i++)
      reject(c, b, i, msg);
    c->st.refused += b->n;
    c->refused = true;
    seterr(c, 0, "batch %" PRId64 " (%" PRIu32 " events) refused by %s: %s", id, b->n,
           c->endpoint, why);
    fly_remove(c, k);
    batch_put(c, b);
    return;
  }
  zql_client_ack_t ack = {.batch = id, .first_index = b->first_index, .events = b->n};
  int64_t v;
  ack.accepted = iter_int64(&ans, "accepted", &v) && v >= 0 && v <= b->n ? (uint32_t)v : 0;
  ack.rejected = iter_int64(&ans, "rejected", &v) && v >= 0 && v <= b->n ? (uint32_t)v : 0;
  iter_bool(&ans, "dup", &ack.dup);
  bool range_ok = ack.accepted && iter_int64(&ans, "first", &ack.first_seq) &&
                  iter_int64(&ans, "last", &ack.last_seq) && ack.first_seq > 0 &&
                  ack.last_seq - ack.first_seq + 1 == (int64_t)ack.accepted;
  if (ack.accepted && !range_ok)
    seterr(c, 0, "the answer to batch %" PRId64 " has an inconsistent _seq range", id);
  if ((uint64_t)ack.accepted + ack.rejected != b->n)
    seterr(c, 0, "the answer to batch %" PRId64 " counts %" PRIu32 " + %" PRIu32
           " events, the batch has %" PRIu32, id, ack.accepted, ack.rejected, b->n);
  uint32_t listed = ack.dup ? 0 : report_errors(c, b, &ans);
  if (listed > ack.rejected)
    listed = ack.rejected;
  c->st.accepted += ack.accepted;
  c->st.rejected += ack.rejected;
  c->st.rejected_unlisted += ack.rejected - listed;
  c->st.batches++;
  if (ack.dup)
    c->st.dups++;
  if (range_ok) {
    if (!c->st.first_seq || ack.first_seq < c->st.first_seq)
      c->st.first_seq = ack.first_seq;
    if (ack.last_seq > c->st.last_seq)
      c->st.last_seq = ack.last_seq;
  }
  if (c->o.on_ack)
    c->o.on_ack(c->o.cb_arg, &ack);
  fly_remove(c, k);
  batch_put(c, b);
}

/* Read every message waiting on the socket. */
static int read_answers(zql_client_t *c)
{
  for (;;) {
    zmq_msg_t f0, f1;
    zmq_msg_init(&f0);
    if (zmq_msg_recv(&f0, c->sock, ZMQ_DONTWAIT) < 0) {
      int e = errno;
      zmq_msg_close(&f0);
      if (e == EAGAIN)
        return 0;
      if (e == EINTR)
        continue;
      return seterr(c, ZQL_CLIENT_E_ZMQ, "receiving: %s", zmq_strerror(e));
    }
    bool good = zmq_msg_size(&f0) == MAGIC_LEN && memcmp(zmq_msg_data(&f0), MAGIC, MAGIC_LEN) == 0;
    bool more = zmq_msg_more(&f0);
    zmq_msg_close(&f0);
    zmq_msg_init(&f1);
    int frames = 1;
    bool have1 = false;
    while (more) { /* the rest of the message is already here (atomic delivery) */
      zmq_msg_t x;
      zmq_msg_init(&x);
      if (zmq_msg_recv(&x, c->sock, 0) < 0) {
        zmq_msg_close(&x);
        if (errno == EINTR)
          continue;
        zmq_msg_close(&f1);
        return seterr(c, ZQL_CLIENT_E_ZMQ, "receiving: %s", zmq_strerror(errno));
      }
      more = zmq_msg_more(&x);
      if (++frames == 2) {
        zmq_msg_move(&f1, &x);
        have1 = true;
      }
      zmq_msg_close(&x);
    }
    if (good && have1 && frames == 2)
      handle_answer(c, zmq_msg_data(&f1), zmq_msg_size(&f1));
    else
      seterr(c, 0, "ignored a malformed answer from %s (%d frames)", c->endpoint, frames);
    zmq_msg_close(&f1);
  }
}

/* Socket monitor events (zmq_socket_monitor(3): 2 frames, {uint16 event, uint32 value}
 * then the endpoint). */
static int read_monitor(zql_client_t *c)
{
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      if (errno == EAGAIN)
        return 0;
      if (errno == EINTR)
        continue;
      return seterr(c, ZQL_CLIENT_E_ZMQ, "socket monitor: %s", zmq_strerror(errno));
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&m) >= 6) {
      memcpy(&event, zmq_msg_data(&m), 2);
      memcpy(&value, (const uint8_t *)zmq_msg_data(&m) + 2, 4);
    }
    bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) {
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, c->mon, 0) < 0 && errno != EINTR) {
        zmq_msg_close(&m);
        break;
      }
      more = zmq_msg_more(&m);
      zmq_msg_close(&m);
    }
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      c->connected = c->ever_connected = true;
      c->down_until = 0;
      break;
    case ZMQ_EVENT_DISCONNECTED: {
      /* The event may overtake the termination of the connection's pipe: a request
       * sent now could still go into the dead pipe. So nothing is sent until the next
       * handshake has succeeded, by which time the old pipe is gone (its termination
       * command reaches the socket before the new connection's). */
      c->connected = false;
      int64_t now = zql_mono_ms();
      c->down_until = now + c->o.ack_timeout_ms;
      for (uint32_t k = 0; k < c->nfly; k++)
        if (c->fly[k]->state == B_SENT) {
          c->fly[k]->state = B_QUEUED;
          c->fly[k]->due = now;
        }
      break;
    }
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      seterr(c, 0, "%s refused this client's CURVE key (ZAP status %" PRIu32 ")", c->endpoint,
             value);
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      seterr(c, 0, "the handshake with %s failed%s", c->endpoint,
             c->server_key[0] ? " (wrong server key, or the server does not use CURVE?)"
                              : " (does the server require CURVE?)");
      break;
    default:
      break;
    }
  }
}

/* }==== */

/* {==== the loop */

typedef enum { UNTIL_IDLE, UNTIL_SLOT, UNTIL_GONE, ONCE } goal_t;

static bool reached(const zql_client_t *c, goal_t goal, int64_t id)
{
  switch (goal) {
  case UNTIL_IDLE:
    return c->nfly == 0;
  case UNTIL_SLOT:
    return c->nfly < c->o.max_inflight_batches;
  case UNTIL_GONE:
    for (uint32_t k = 0; k < c->nfly; k++)
      if (c->fly[k]->id == id)
        return false;
    return true;
  case ONCE:
    return c->nfly == 0;
  }
  return true;
}

static void timeout_message(zql_client_t *c)
{
  uint64_t events = 0;
  for (uint32_t k = 0; k < c->nfly; k++)
    events += c->fly[k]->n;
  char cause[ZQL_CLIENT_ERRLEN];
  snprintf(cause, sizeof cause, "%s", c->err);
  if (!c->connected && !cause[0])
    snprintf(cause, sizeof cause, "no connection to %s%s", c->endpoint,
             c->ever_connected ? " (lost)" : " (is zqld running?)");
  seterr(c, ZQL_CLIENT_E_TIMEOUT,
         "%" PRIu32 " batch%s (%" PRIu64 " events) not acknowledged in time%s%s", c->nfly,
         c->nfly == 1 ? "" : "es", events, cause[0] ? ": " : "", cause);
}

/* Work until `goal` holds or `deadline` passes (ZQL_CLIENT_E_TIMEOUT); the socket is
 * read at least once. ONCE: return at the deadline without an error. */
static int pump(zql_client_t *c, goal_t goal, int64_t id, int64_t deadline)
{
  for (;;) {
    if (reached(c, goal, id))
      return 0;
    int64_t now = zql_mono_ms();
    expire(c, now);
    bool blocked;
    int rc = send_due(c, now, &blocked);
    if (rc < 0)
      return rc;
    bool last = now >= deadline;
    int64_t wake = next_timer(c, now);
    if (wake > deadline)
      wake = deadline;
    long wait = last || wake <= now ? 0 : wake - now > 1000000 ? 1000000 : (long)(wake - now);
    zmq_pollitem_t items[2] = {
        {c->sock, 0, (short)(ZMQ_POLLIN | (blocked ? ZMQ_POLLOUT : 0)), 0},
        {c->mon, 0, ZMQ_POLLIN, 0},
    };
    /* a QUEUED batch that is due but blocked waits for POLLOUT; one that is due but held
     * (busy) waits for its timer, which next_timer() counted */
    if (zmq_poll(items, 2, wait) < 0) {
      if (errno == EINTR)
        continue;
      return seterr(c, ZQL_CLIENT_E_ZMQ, "zmq_poll: %s", zmq_strerror(errno));
    }
    if (items[1].revents & ZMQ_POLLIN && (rc = read_monitor(c)) < 0)
      return rc;
    if (items[0].revents & ZMQ_POLLIN && (rc = read_answers(c)) < 0)
      return rc;
    if (last) {
      if (goal == ONCE || reached(c, goal, id))
        return 0;
      timeout_message(c);
      return ZQL_CLIENT_E_TIMEOUT;
    }
  }
}

/* Move the open batch into flight (waiting for a slot until `deadline`). */
static int submit_open(zql_client_t *c, int64_t deadline)
{
  if (!c->open || !c->open->n)
    return 0;
  int rc = pump(c, UNTIL_SLOT, 0, deadline);
  if (rc < 0)
    return rc;
  batch_t *b = c->open;
  c->open = NULL;
  b->id = c->next_batch++;
  b->state = B_QUEUED;
  b->due = zql_mono_ms();
  c->fly[c->nfly++] = b;
  bool blocked;
  return send_due(c, b->due, &blocked);
}

/* }==== */

/* {==== public API */

void zql_client_opts_init(zql_client_opts_t *o)
{
  memset(o, 0, sizeof *o);
  o->batch_max_events = 1000;
  o->batch_max_bytes = 1u << 20;
  o->batch_max_delay_ms = 100;
  o->ack_timeout_ms = 5000;
  o->max_inflight_batches = 64;
  o->send_timeout_ms = -1;
  o->backoff_min_ms = 50;
  o->backoff_max_ms = 5000;
  o->linger_ms = 0;
}

const char *zql_client_strerror(int code)
{
  switch (code) {
  case ZQL_CLIENT_OK:
    return "success";
  case ZQL_CLIENT_E_NOMEM:
    return "out of memory";
  case ZQL_CLIENT_E_IO:
    return "input/output error";
  case ZQL_CLIENT_E_INVALID:
    return "invalid argument";
  case ZQL_CLIENT_E_ZMQ:
    return "ZeroMQ error";
  case ZQL_CLIENT_E_TIMEOUT:
    return "timed out";
  case ZQL_CLIENT_E_REFUSED:
    return "batch refused by the server";
  default:
    return "unknown error";
  }
}

static int check_opts(const zql_client_opts_t *o, char *errbuf)
{
  if (o->batch_max_events < 1 || o->batch_max_events > INT32_MAX)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "batch_max_events must be at least 1");
  if (o->batch_max_bytes < 1)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "batch_max_bytes must be at least 1");
  if (o->ack_timeout_ms < 1)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "ack_timeout_ms must be positive");
  if (o->max_inflight_batches < 1 || o->max_inflight_batches > 1u << 20)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "max_inflight_batches must be 1..1048576");
  if (o->backoff_min_ms < 1 || o->backoff_max_ms < o->backoff_min_ms)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID,
                   "backoff_min_ms must be positive and at most backoff_max_ms");
  if (o->linger_ms < -1)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "linger_ms must be -1 or more");
  const char *keys[3] = {o->server_public_key, o->public_key, o->secret_key};
  const char *names[3] = {"server_public_key", "public_key", "secret_key"};
  for (int i = 0; i < 3; i++)
    if (keys[i] && !valid_key(keys[i]))
      return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s is not a Z85 CURVE key (40 characters)",
                     names[i]);
  if (!o->server_public_key && (o->public_key || o->secret_key))
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID,
                   "client keys need the server's public key (server_public_key)");
  if (o->public_key && !o->secret_key)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "public_key needs its secret_key");
  return 0;
}

/* Set a socket option; on failure, the message. */
static int sockopt(void *s, int opt, const void *v, size_t len, const char *what,
                   char *errbuf)
{
  if (zmq_setsockopt(s, opt, v, len) == 0)
    return 0;
  return bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "setting %s: %s", what, zmq_strerror(errno));
}

static int intopt(void *s, int opt, int v, const char *what, char *errbuf)
{
  return sockopt(s, opt, &v, sizeof v, what, errbuf);
}

static int setup_curve(zql_client_t *c, const zql_client_opts_t *o, char *errbuf)
{
  if (!o->server_public_key)
    return 0;
  memcpy(c->server_key, o->server_public_key, ZQL_CLIENT_KEY_LEN + 1);
  if (o->secret_key) {
    memcpy(c->secret_key, o->secret_key, ZQL_CLIENT_KEY_LEN + 1);
    char derived[ZQL_CLIENT_KEY_LEN + 1];
    if (zmq_curve_public(derived, c->secret_key) != 0)
      return bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "CURVE is not available: %s",
                     zmq_strerror(errno));
    if (o->public_key && strcmp(derived, o->public_key) != 0)
      return bufferr(errbuf, ZQL_CLIENT_E_INVALID,
                     "public_key does not belong to secret_key");
    memcpy(c->public_key, derived, sizeof derived);
  } else if (zmq_curve_keypair(c->public_key, c->secret_key) != 0) {
    return bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "CURVE is not available: %s", zmq_strerror(errno));
  }
  /* the option values are Z85 text: 41 bytes with the NUL */
  int rc = sockopt(c->sock, ZMQ_CURVE_SERVERKEY, c->server_key, ZQL_CLIENT_KEY_LEN + 1,
                   "ZMQ_CURVE_SERVERKEY", errbuf);
  if (rc == 0)
    rc = sockopt(c->sock, ZMQ_CURVE_PUBLICKEY, c->public_key, ZQL_CLIENT_KEY_LEN + 1,
                 "ZMQ_CURVE_PUBLICKEY", errbuf);
  if (rc == 0)
    rc = sockopt(c->sock, ZMQ_CURVE_SECRETKEY, c->secret_key, ZQL_CLIENT_KEY_LEN + 1,
                 "ZMQ_CURVE_SECRETKEY", errbuf);
  return rc;
}

int zql_client_connect(const char *endpoint, const zql_client_opts_t *opts, zql_client_t **out,
                       char *errbuf)
{
  *out = NULL;
  if (errbuf)
    errbuf[0] = '\0';
  char lerr[256];
  if (zql_zmq_load(lerr, sizeof lerr) != 0)
    return bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "%s", lerr);
  zql_client_opts_t defaults;
  if (!opts) {
    zql_client_opts_init(&defaults);
    opts = &defaults;
  }
  int rc = check_opts(opts, errbuf);
  if (rc < 0)
    return rc;
  if (!endpoint)
    endpoint = ZQL_CLIENT_DEFAULT_ENDPOINT;
  if (!*endpoint)
    return bufferr(errbuf, ZQL_CLIENT_E_INVALID, "empty endpoint");
  zql_client_t *c = zql_calloc(1, sizeof *c);
  if (!c)
    return bufferr(errbuf, ZQL_CLIENT_E_NOMEM, "out of memory");
  c->o = *opts;
  c->o.server_public_key = c->o.public_key = c->o.secret_key = NULL; /* copied below */
  c->next_batch = 1;
  c->endpoint = zql_strndup(endpoint, strlen(endpoint));
  c->fly = zql_calloc(opts->max_inflight_batches, sizeof *c->fly);
  c->spare = zql_calloc(opts->max_inflight_batches, sizeof *c->spare);
  if (!c->endpoint || !c->fly || !c->spare) {
    rc = bufferr(errbuf, ZQL_CLIENT_E_NOMEM, "out of memory");
    goto fail;
  }
  if (!random_bytes(c->id, sizeof c->id)) {
    rc = bufferr(errbuf, ZQL_CLIENT_E_IO, "no random bytes for the client id: %s",
                 strerror(errno));
    goto fail;
  }
  memcpy(&c->rng, c->id, sizeof c->rng);
  c->ctx = opts->zmq_context;
  if (!c->ctx) {
    if (!(c->ctx = zmq_ctx_new())) {
      rc = bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "zmq_ctx_new: %s", zmq_strerror(errno));
      goto fail;
    }
    c->own_ctx = true;
  }
  if (!(c->sock = zmq_socket(c->ctx, ZMQ_DEALER))) {
    rc = bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "zmq_socket: %s", zmq_strerror(errno));
    goto fail;
  }
  /* high-water marks: the in-flight limit is the real bound; leave room for resends */
  int hwm = (int)(opts->max_inflight_batches > 1u << 19 ? 1u << 20 : 2 * opts->max_inflight_batches);
  if ((rc = intopt(c->sock, ZMQ_LINGER, opts->linger_ms, "ZMQ_LINGER", errbuf)) < 0 ||
      (rc = intopt(c->sock, ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE", errbuf)) < 0 ||
      (rc = intopt(c->sock, ZMQ_SNDHWM, hwm, "ZMQ_SNDHWM", errbuf)) < 0 ||
      (rc = intopt(c->sock, ZMQ_RCVHWM, hwm, "ZMQ_RCVHWM", errbuf)) < 0 ||
      (rc = intopt(c->sock, ZMQ_HEARTBEAT_IVL, HEARTBEAT_IVL_MS, "ZMQ_HEARTBEAT_IVL",
                   errbuf)) < 0 ||
      (rc = intopt(c->sock, ZMQ_HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS,
                   "ZMQ_HEARTBEAT_TIMEOUT", errbuf)) < 0 ||
      (rc = intopt(c->sock, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS,
                   "ZMQ_RECONNECT_IVL_MAX", errbuf)) < 0 ||
      (rc = setup_curve(c, opts, errbuf)) < 0)
    goto fail;
  /* the monitor's inproc name is unique per client (its random id), so clients can share
   * a context */
  char mon_ep[64];
  int pos = snprintf(mon_ep, sizeof mon_ep, "inproc://zql-client-monitor-");
  for (int i = 0; i < 8; i++)
    pos += snprintf(mon_ep + pos, sizeof mon_ep - (size_t)pos, "%02x", c->id[i]);
  if (zmq_socket_monitor(c->sock, mon_ep,
                         ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
      !(c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) || zmq_connect(c->mon, mon_ep) != 0) {
    rc = bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "socket monitor: %s", zmq_strerror(errno));
    goto fail;
  }
  intopt(c->mon, ZMQ_LINGER, 0, "ZMQ_LINGER", NULL);
  if (zmq_connect(c->sock, endpoint) != 0) {
    rc = bufferr(errbuf, errno == ENOMEM ? ZQL_CLIENT_E_NOMEM : ZQL_CLIENT_E_INVALID,
                 "cannot connect to '%s': %s", endpoint, zmq_strerror(errno));
    goto fail;
  }
  *out = c;
  return 0;
fail:
  zql_client_close(c);
  return rc;
}

void zql_client_close(zql_client_t *c)
{
  if (!c)
    return;
  if (c->sock) {
    zmq_socket_monitor(c->sock, NULL, 0);
    zmq_close(c->sock);
  }
  if (c->mon)
    zmq_close(c->mon);
  if (c->own_ctx)
    zmq_ctx_term(c->ctx);
  batch_free(c->open);
  for (uint32_t k = 0; k < c->nfly; k++)
    batch_free(c->fly[k]);
  for (uint32_t k = 0; k < c->nspare; k++)
    batch_free(c->spare[k]);
  zql_free(c->fly);
  zql_free(c->spare);
  zql_free(c->endpoint);
  zql_free(c);
}

/* Add `len` bytes of one BSON document to the open batch, sending batches as they fill. */
static int add_event(zql_client_t *c, const uint8_t *data, size_t len)
{
  if (len > ZQL_CLIENT_MAX_EVENT)
    return seterr(c, ZQL_CLIENT_E_INVALID, "event of %zu bytes is larger than the %u-byte limit",
                  len, ZQL_CLIENT_MAX_EVENT);
  int rc;
  bool submitted = false;
  /* does not fit: send the open batch first (it may have to wait for a slot) */
  if (c->open && c->open->n &&
      (c->open->n >= c->o.batch_max_events || c->open->data.len + len > c->o.batch_max_bytes)) {
    if ((rc = submit_open(c, deadline_after(c->o.send_timeout_ms))) < 0)
      return rc;
    submitted = true;
  }
  if (!c->open && !(c->open = batch_get(c)))
    return seterr(c, ZQL_CLIENT_E_NOMEM, "out of memory");
  batch_t *b = c->open;
  size_t old = b->data.len;
  zql_strbuf_add(&b->data, data, len);
  if (b->data.oom) {
    b->data.len = old;
    b->data.oom = false;
    return seterr(c, ZQL_CLIENT_E_NOMEM, "out of memory");
  }
  if (b->n == 0)
    b->due = zql_mono_ms();
  b->n++;
  c->next_index++;
  c->st.events++;
  /* full, or old: send now if a slot is free; otherwise the next call waits for one */
  bool full = b->n >= c->o.batch_max_events || b->data.len >= c->o.batch_max_bytes;
  bool old_enough = c->o.batch_max_delay_ms >= 0 && zql_mono_ms() - b->due >= c->o.batch_max_delay_ms;
  if ((full || old_enough) && c->nfly < c->o.max_inflight_batches) {
    if ((rc = submit_open(c, NEVER)) < 0)
      return rc;
    submitted = true;
  }
  /* once per batch, not per event: read the answers that arrived, without waiting */
  return submitted ? pump(c, ONCE, 0, 0) : 0;
}

int zql_client_send(zql_client_t *c, const bson_t *event)
{
  if (!event)
    return seterr(c, ZQL_CLIENT_E_INVALID, "no event");
  return add_event(c, bson_get_data(event), event->len);
}

int zql_client_send_json(zql_client_t *c, const char *json)
{
  if (!json)
    return seterr(c, ZQL_CLIENT_E_INVALID, "no JSON text");
  /* The NDJSON reader does extended JSON and $datetime; a raw newline in JSON text is
   * whitespace (strings cannot hold one), so a pretty-printed object becomes one line. */
  size_t len = strlen(json);
  char *line = NULL;
  if (memchr(json, '\n', len)) {
    if (!(line = zql_strndup(json, len)))
      return seterr(c, ZQL_CLIENT_E_NOMEM, "out of memory");
    for (char *p = line; (p = memchr(p, '\n', len - (size_t)(p - line))); p++)
      *p = ' ';
  }
  zql_ioreader_opts_t ro = {ZQL_IOFMT_NDJSON, true, ZQL_CLIENT_MAX_EVENT};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_ioreader_t *r = NULL;
  int rc = zql_ioreader_open_mem(line ? line : json, len, "json", &ro, &r, &err);
  const bson_t *doc = NULL;
  if (rc == 0) {
    rc = zql_ioreader_next(r, &doc, NULL, &err);
    if (rc == 0)
      zql_strbuf_adds(&err, "json:1: empty JSON text");
  }
  if (rc == 1) {
    rc = add_event(c, bson_get_data(doc), doc->len);
  } else {
    const char *msg = err.oom ? "out of memory" : err.buf;
    if (strncmp(msg, "json:1: ", 8) == 0)
      msg += 8;
    rc = seterr(c, rc == ZQL_E_NOMEM ? ZQL_CLIENT_E_NOMEM : ZQL_CLIENT_E_INVALID, "%s", msg);
  }
  zql_ioreader_close(r);
  zql_strbuf_release(&err);
  zql_free(line);
  return rc;
}

int zql_client_send_batch(zql_client_t *c, const bson_t *const *docs, size_t n, size_t *taken)
{
  size_t i = 0;
  int rc = 0;
  for (; i < n && rc == 0; i++)
    if ((rc = zql_client_send(c, docs[i])) < 0)
      break;
  if (taken)
    *taken = i;
  return rc;
}

int zql_client_poll(zql_client_t *c, int64_t timeout_ms)
{
  int64_t deadline = deadline_after(timeout_ms);
  if (c->open && c->o.batch_max_delay_ms >= 0 &&
      zql_mono_ms() - c->open->due >= c->o.batch_max_delay_ms && c->nfly < c->o.max_inflight_batches) {
    int rc = submit_open(c, NEVER);
    if (rc < 0)
      return rc;
  }
  return pump(c, ONCE, 0, deadline);
}

int zql_client_flush(zql_client_t *c, int64_t timeout_ms, zql_client_stats_t *st)
{
  int64_t deadline = deadline_after(timeout_ms);
  c->err[0] = '\0';
  int rc = submit_open(c, deadline);
  if (rc == 0)
    rc = pump(c, UNTIL_IDLE, 0, deadline);
  if (rc == 0 && c->refused) {
    c->refused = false;
    rc = ZQL_CLIENT_E_REFUSED;
  }
  if (st)
    zql_client_stats(c, st);
  return rc;
}

int zql_client_ping(zql_client_t *c, int64_t timeout_ms)
{
  int64_t deadline = deadline_after(timeout_ms);
  c->err[0] = '\0';
  int rc = pump(c, UNTIL_SLOT, 0, deadline);
  if (rc < 0)
    return rc;
  batch_t *b = batch_get(c);
  if (!b)
    return seterr(c, ZQL_CLIENT_E_NOMEM, "out of memory");
  b->id = c->next_batch++;
  b->state = B_QUEUED;
  c->fly[c->nfly++] = b;
  return pump(c, UNTIL_GONE, b->id, deadline);
}

void zql_client_stats(const zql_client_t *c, zql_client_stats_t *st)
{
  *st = c->st;
  uint64_t pending = c->open ? c->open->n : 0;
  for (uint32_t k = 0; k < c->nfly; k++)
    pending += c->fly[k]->n;
  st->pending = pending;
}

void zql_client_id(const zql_client_t *c, uint8_t id[16])
{
  memcpy(id, c->id, 16);
}

const char *zql_client_last_error(const zql_client_t *c)
{
  return c->err;
}

/* }==== */

/* {==== key files */

int zql_client_read_keyfile(const char *path, char *public_z85, char *secret_z85, char *errbuf)
{
  public_z85[0] = secret_z85[0] = '\0';
  if (errbuf)
    errbuf[0] = '\0';
  char lerr[256];
  if (zql_zmq_load(lerr, sizeof lerr) != 0)
    return bufferr(errbuf, ZQL_CLIENT_E_ZMQ, "%s", lerr);
  FILE *f = fopen(path, "r");
  if (!f)
    return bufferr(errbuf, ZQL_CLIENT_E_IO, "%s: %s", path, strerror(errno));
  char line[256];
  int lineno = 0, rc = 0;
  size_t total = 0;
  int pub_line = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strlen(line);
    total += n;
    if (total > KEYFILE_MAX) {
      rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s: not a key file (too large)", path);
      break;
    }
    if (n == sizeof line - 1 && line[n - 1] != '\n') {
      rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s:%d: line too long", path, lineno);
      break;
    }
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                 line[n - 1] == '\t'))
      line[--n] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    /* a bare key first: Z85 has '=' and '#' in its alphabet */
    bool bare = valid_key(p);
    if (!bare && (!*p || *p == '#' || *p == ';'))
      continue;
    char *which = NULL, *val = p;
    char *eq = bare ? NULL : strchr(p, '=');
    if (eq) {
      char *k_end = eq;
      while (k_end > p && (k_end[-1] == ' ' || k_end[-1] == '\t'))
        k_end--;
      *k_end = '\0';
      which = p;
      val = eq + 1;
      while (*val == ' ' || *val == '\t')
        val++;
      if (strcmp(which, "public") != 0 && strcmp(which, "secret") != 0) {
        rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID,
                     "%s:%d: unknown key '%s' (expected 'public' or 'secret')", path, lineno,
                     which);
        break;
      }
    }
    if (!valid_key(val)) {
      rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s:%d: not a Z85 CURVE key (40 characters)",
                   path, lineno);
      break;
    }
    char *dst = which && strcmp(which, "secret") == 0 ? secret_z85 : public_z85;
    if (dst[0]) {
      rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s:%d: a second %s key", path, lineno,
                   dst == secret_z85 ? "secret" : "public");
      break;
    }
    memcpy(dst, val, ZQL_CLIENT_KEY_LEN + 1);
    if (dst == public_z85)
      pub_line = lineno;
  }
  if (rc == 0 && ferror(f))
    rc = bufferr(errbuf, ZQL_CLIENT_E_IO, "%s: %s", path, strerror(errno));
  fclose(f);
  if (rc == 0 && !public_z85[0] && !secret_z85[0])
    rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s: no key in the file", path);
  if (rc == 0 && secret_z85[0]) {
    char derived[ZQL_CLIENT_KEY_LEN + 1];
    if (zmq_curve_public(derived, secret_z85) != 0)
      rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID, "%s: CURVE is not available: %s", path,
                   zmq_strerror(errno));
    else if (public_z85[0] && strcmp(derived, public_z85) != 0)
      rc = bufferr(errbuf, ZQL_CLIENT_E_INVALID,
                   "%s:%d: the public key does not belong to the secret key", path, pub_line);
    else
      memcpy(public_z85, derived, sizeof derived);
  }
  if (rc < 0)
    public_z85[0] = secret_z85[0] = '\0';
  return rc;
}

/* }==== */
