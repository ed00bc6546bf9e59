/*
 * zqld_ingest.c -- zqld's ZeroMQ ingest endpoints and the writer thread (runtime services:
 * between the network and the event log; the scheduler hears of appends through the
 * `appended` callback).
 *
 * Threads and who owns what:
 *   socket thread  every ZeroMQ socket: PULL bson/json, ROUTER acked, the ZAP REP
 *                  (inproc://zeromq.zap.01, RFC 27), the reply PAIR from the writer and
 *                  the control PAIR from the API. It moves received frames (zmq_msg_t,
 *                  no copy) into queue items, up to CHUNK_FRAMES per item so the queue
 *                  lock is taken once per chunk, and answers busy/draining/bad requests.
 *   writer thread  the journal (ackjournal.c), the dead-letter file (deadletter.c) and
 *                  every log append. One cycle = everything queued at that moment:
 *                    1. validate each frame (ingest.c) into a slot of a reusable bson_t
 *                       pool; rejected ones are dead-lettered and listed;
 *                    2. acked batches already in the journal (or earlier in the cycle)
 *                       are dups: answered with the recorded range, not appended;
 *                    3. journal records for the new acked batches, with the _seq range
 *                       they will get (the writer is the log's only appender), written
 *                       and fdatasynced;
 *                    4. one zql_evlog_append for every valid event of the cycle;
 *                    5. zql_evlog_sync when the cycle holds acked batches (one fdatasync
 *                       for all of them: group commit);
 *                    6. dead-letter flush, the `appended` callback, replies (acked ones
 *                       go back to the socket thread over an inproc PAIR), HTTP waiters.
 *                  While a cycle runs the socket thread keeps filling the queue, so the
 *                  next cycle is bigger when the log is slower: batching adapts to load.
 * Why frames are validated in the writer: it keeps the socket thread's per-frame work to
 * one zmq_msg_recv, which is what the PULL rate depends on, and the dead-letter file and
 * the counters have one owner. Measured on the 2-core machine (bench/bench_ingest.c,
 * 133-byte events): the writer spends about 580 ns per event in zql_ingest_bson (libbson
 * validation, the UTF-8 walk, the rule walk and a copy) and 180 ns in zql_evlog_append,
 * so it, not ZeroMQ, bounds PUSH ingest at about 1.2M events/s (35% of a raw PUSH/PULL
 * loop that only counts frames). Validating in the socket thread instead would make that
 * thread the bottleneck at about the same rate.
 *
 * Failure handling: a journal write that fails answers that cycle's acked batches
 * `ok: false` and leaves their events out of the append (the client retries; nothing is
 * logged twice). A failed append revokes the cycle's journal records and dead-letters the
 * cycle's unacknowledged events with the log's message (nothing is dropped silently). A
 * failed sync answers `ok: false` and forgets the records in memory (the event log is
 * then unusable; the restart recovers journal and log together).
 */
#include "runtime/base/zql_common.h"

#include "runtime/zqld_ingest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <zmq.h>

#include "runtime/ackjournal.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/clock.h"
#include "runtime/deadletter.h"
#include "runtime/log.h"

#define CHUNK_FRAMES 1024      /* frames per queue item from a PULL socket */
#define MAX_FREE_ITEMS 64      /* recycled items kept */
#define SLOT_BLOCK 1024        /* bson_t per pool block */
#define DEFAULT_HWM 10000
#define DEFAULT_QUEUE_EVENTS 65536
#define DEFAULT_QUEUE_BYTES ((uint64_t)64 << 20)
#define MAX_FRAME ((int64_t)ZQL_EVLOG_MAX_DOC + 65536) /* ZMQ_MAXMSGSIZE: larger frames
                                                        * disconnect the peer */
#define ITEM_OVERHEAD 64        /* bytes counted per frame besides its data */
#define DRAIN_READ_MS 1000      /* at most this long reading buffered PULL frames */
#define ROUTER_LINGER_MS 1000
#define MAGIC "ZQA1"

typedef struct http_wait http_wait_t;

/* A unit of the queue: a chunk of PULL frames, one acked request or one HTTP submit. */
typedef struct item {
  struct item *next;
  zql_ingestd_source_t src;
  size_t n, cap;          /* event frames */
  zmq_msg_t *frames;      /* [cap] (PULL, acked) */
  uint64_t bytes;         /* counted against queue_bytes */
  int64_t received_ms;
  /* acked */
  zmq_msg_t rid;
  bool delim;             /* an empty frame followed the routing id (REQ-style) */
  zmq_msg_t hdr;          /* kept for the peer's address */
  uint8_t client[16];
  int64_t batch;
  /* http */
  http_wait_t *http;
  /* the writer's notes for this cycle */
  size_t doc0, ndocs;     /* its valid events in the cycle's docs[] */
  uint32_t rejected;
  int dup_of;             /* acked: -1, or the index of the earlier request of the cycle */
  bool dup_journal;       /* acked: known from the journal: rec holds the range */
  bool failed;            /* acked: answered ok:false */
  zql_ackrec_t rec;
  bson_t errs;            /* acked: the reply's errors array (inited per cycle) */
  uint32_t nerrs;
} item_t;

struct http_wait {
  const zql_ingestd_event_t *ev;
  const char *peer;
  zql_ingestd_result_t *res;
  bool done;
  int rc;
  zql_strbuf_t err;
};

typedef struct counts {
  _Atomic uint64_t received, accepted, rejected, bytes;
} counts_t;

struct zql_ingestd {
  zql_ingestd_opts_t o;
  char *data_dir, *dl_dir;
  char *endpoint[ZQL_INGESTD_SOURCES];
  char source_name[ZQL_INGESTD_SOURCES][80];
  void *ctx;
  bool own_ctx;
  bool curve;
  char curve_secret[41];
  uint8_t (*allow)[32];
  size_t nallow;
  /* sockets (socket thread after start) */
  void *pull[2], *router, *zap, *reply_in, *ctl_in;
  void *reply_out; /* writer thread */
  void *ctl_out;   /* API threads, under api_mu */
  pthread_mutex_t api_mu;
  char ctl_addr[96], reply_addr[96];
  /* the queue */
  pthread_mutex_t mu;
  pthread_cond_t cond_writer; /* items queued, or closed */
  pthread_cond_t cond_space;  /* room freed, a submit finished, drained */
  item_t *head, *tail;
  uint64_t q_events, q_bytes;
  bool sock_blocked;   /* the socket thread waits for room: wake it */
  bool closed;         /* no more input (drain) */
  bool draining;       /* drain requested */
  bool writer_done;
  item_t *freelist;
  size_t nfree;
  /* threads */
  pthread_t sock_thread, writer_thread;
  bool sock_started, writer_started;
  /* writer state */
  zql_ackjournal_t *journal;
  zql_deadletter_t *dl;
  int64_t next_seq;
  /* stats */
  counts_t c[ZQL_INGESTD_SOURCES];
  _Atomic uint64_t busy, batches_acked, batches_dup, bad_requests, curve_denied, log_errors;
  _Atomic uint64_t dl_lines, dl_lost;
};

static void deadline_ts(struct timespec *ts, int64_t ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t ns = ts->tv_nsec + (ms % 1000) * 1000000;
  ts->tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c)
{
  return atomic_load_explicit(c, memory_order_relaxed);
}

const char *zql_ingestd_source_name(zql_ingestd_source_t s)
{
  static const char *const names[] = {"bson", "json", "acked", "http"};
  return (unsigned)s < ZQL_INGESTD_SOURCES ? names[s] : "?";
}

void zql_ingestd_opts_init(zql_ingestd_opts_t *o)
{
  memset(o, 0, sizeof *o);
  o->fsync = ZQL_EVLOG_SYNC_BATCH;
  o->hwm = DEFAULT_HWM;
  o->queue_events = DEFAULT_QUEUE_EVENTS;
  o->queue_bytes = DEFAULT_QUEUE_BYTES;
  o->limits.max_event_bytes = ZQL_INGEST_MAX_EVENT_DEFAULT;
  o->limits.max_body_bytes = ZQL_INGEST_MAX_BODY_DEFAULT;
}

/* {==== queue ================================================================ */

static bool full_locked(const zql_ingestd_t *d)
{
  return d->q_events >= d->o.queue_events || d->q_bytes >= d->o.queue_bytes;
}

static item_t *item_get(zql_ingestd_t *d, zql_ingestd_source_t src, size_t cap)
{
  item_t *it = NULL;
  pthread_mutex_lock(&d->mu);
  if (d->freelist) {
    it = d->freelist;
    d->freelist = it->next;
    d->nfree--;
  }
  pthread_mutex_unlock(&d->mu);
  if (!it && !(it = zql_calloc(1, sizeof *it)))
    return NULL;
  if (it->cap < cap) {
    zmq_msg_t *f = zql_reallocarray(it->frames, cap, sizeof *f);
    if (!f) {
      zql_free(it->frames);
      zql_free(it);
      return NULL;
    }
    it->frames = f;
    it->cap = cap;
  }
  it->next = NULL;
  it->src = src;
  it->n = 0;
  it->bytes = 0;
  it->http = NULL;
  it->delim = false;
  it->batch = 0;
  return it;
}

/* Release the frames of an item the writer is done with (or the socket thread gave up). */
static void item_clear(item_t *it)
{
  for (size_t i = 0; i < it->n; i++)
    zmq_msg_close(&it->frames[i]);
  if (it->src == ZQL_INGESTD_ACKED) {
    zmq_msg_close(&it->rid);
    zmq_msg_close(&it->hdr);
  }
  it->n = 0;
}

static void item_destroy(item_t *it)
{
  zql_free(it->frames);
  zql_free(it);
}

static void push_locked(zql_ingestd_t *d, item_t *it, uint64_t events)
{
  if (d->tail)
    d->tail->next = it;
  else
    d->head = it;
  d->tail = it;
  d->q_events += events;
  d->q_bytes += it->bytes;
  pthread_cond_signal(&d->cond_writer);
}

/* }==== */

/* {==== socket thread ======================================================= */

static int send_frames(void *sock, zmq_msg_t *rid, bool delim, const bson_t *reply)
{
  zmq_msg_t m;
  if (zmq_msg_send(rid, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return -1;
  if (delim) {
    zmq_msg_init(&m);
    if (zmq_msg_send(&m, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return -1;
    }
  }
  if (zmq_send(sock, MAGIC, 4, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return -1;
  return zmq_send(sock, bson_get_data(reply), reply->len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

/* An acked request refused before it reached the queue. */
static void reply_refused(void *router, zmq_msg_t *rid, bool delim, int64_t batch, const char *why)
{
  bson_t r;
  bson_init(&r);
  if (batch > 0)
    BSON_APPEND_INT64(&r, "batch", batch);
  BSON_APPEND_BOOL(&r, "ok", false);
  BSON_APPEND_UTF8(&r, "error", why);
  send_frames(router, rid, delim, &r);
  bson_destroy(&r);
}

/* Read every part of one multipart message into *v (grown as needed). Returns the count,
 * or -1 (EAGAIN: nothing there). */
static long recv_parts(void *sock, zmq_msg_t **v, size_t *cap)
{
  size_t n = 0;
  for (;;) {
    if (n == *cap) {
      size_t nc = *cap ? *cap * 2 : 16;
      zmq_msg_t *nv = zql_reallocarray(*v, nc, sizeof *nv);
      if (!nv) {
        /* drop the rest of the message */
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_more(&(*v)[n - 1]) && zmq_msg_recv(&m, sock, 0) >= 0 && zmq_msg_more(&m))
          ;
        zmq_msg_close(&m);
        for (size_t i = 0; i < n; i++)
          zmq_msg_close(&(*v)[i]);
        return 0;
      }
      *v = nv;
      *cap = nc;
    }
    zmq_msg_init(&(*v)[n]);
    if (zmq_msg_recv(&(*v)[n], sock, n ? 0 : ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&(*v)[n]);
      if (n == 0)
        return -1;
      break; /* the context is terminating */
    }
    n++;
    if (!zmq_msg_more(&(*v)[n - 1]))
      break;
  }
  return (long)n;
}

/* Parse an acked request header; NULL when fine, else the error text (in `why`). */
static const char *parse_header(const zmq_msg_t *m, uint8_t client[16], int64_t *batch,
                                int64_t *n, zql_strbuf_t *why)
{
  bson_t h;
  const uint8_t *p = zmq_msg_data((zmq_msg_t *)m);
  size_t len = zmq_msg_size((zmq_msg_t *)m);
  if (len < 5 || (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24) != len ||
      !bson_init_static(&h, p, len) || !bson_validate(&h, BSON_VALIDATE_NONE, NULL)) {
    zql_strbuf_adds(why, "bad request: frame 1 is not a BSON header");
    return why->buf;
  }
  bool has_client = false, has_batch = false, has_n = false;
  bson_iter_t it;
  bson_iter_init(&it, &h);
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    if (strcmp(k, "client") == 0 && BSON_ITER_HOLDS_BINARY(&it)) {
      bson_subtype_t st;
      uint32_t blen;
      const uint8_t *b;
      bson_iter_binary(&it, &st, &blen, &b);
      if (st == BSON_SUBTYPE_UUID && blen == 16) {
        memcpy(client, b, 16);
        has_client = true;
      }
    } else if (strcmp(k, "batch") == 0 && (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it))) {
      *batch = bson_iter_as_int64(&it);
      has_batch = *batch > 0;
    } else if (strcmp(k, "n") == 0 && (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it))) {
      *n = bson_iter_as_int64(&it);
      has_n = *n >= 0;
    }
  }
  static const uint8_t zero[16];
  if (!has_client || memcmp(client, zero, 16) == 0)
    zql_strbuf_adds(why, "bad request: header field 'client' must be 16 bytes of binary subtype 4, not all zero");
  else if (!has_batch)
    zql_strbuf_adds(why, "bad request: header field 'batch' must be an integer > 0");
  else if (!has_n)
    zql_strbuf_adds(why, "bad request: header field 'n' must be an integer >= 0");
  return why->len ? why->buf : NULL;
}

typedef struct sockstate {
  zmq_msg_t *parts;
  size_t cap;
  zql_strbuf_t why;
} sockstate_t;

static void handle_acked(zql_ingestd_t *d, sockstate_t *s)
{
  long np = recv_parts(d->router, &s->parts, &s->cap);
  if (np <= 0)
    return;
  zmq_msg_t *v = s->parts;
  size_t i = 1; /* v[0] is the routing id */
  bool delim = false;
  if ((size_t)np > i + 1 && zmq_msg_size(&v[i]) == 0) {
    delim = true;
    i++;
  }
  uint8_t client[16];
  int64_t batch = 0, n = -1;
  const char *why = NULL;
  zql_strbuf_reset(&s->why);
  if ((size_t)np < i + 2 || zmq_msg_size(&v[i]) != 4 || memcmp(zmq_msg_data(&v[i]), MAGIC, 4) != 0) {
    why = "bad request: frame 0 must be 'ZQA1' and frame 1 a header";
  } else if (!(why = parse_header(&v[i + 1], client, &batch, &n, &s->why))) {
    size_t nev = (size_t)np - (i + 2);
    if ((uint64_t)n != nev) {
      zql_strbuf_addf(&s->why, "bad request: header says n = %" PRId64 " but %zu event frames follow", n, nev);
      why = s->why.buf;
    }
  }
  if (why) {
    add(&d->bad_requests, 1);
    reply_refused(d->router, &v[0], delim, batch, why);
    goto done;
  }
  size_t nev = (size_t)n;
  uint64_t bytes = 0;
  for (size_t k = i + 2; k < (size_t)np; k++)
    bytes += zmq_msg_size(&v[k]) + ITEM_OVERHEAD;
  add(&d->c[ZQL_INGESTD_ACKED].received, nev);
  add(&d->c[ZQL_INGESTD_ACKED].bytes, bytes);
  if (nev == 0) { /* ping */
    bson_t r;
    bson_init(&r);
    BSON_APPEND_INT64(&r, "batch", batch);
    BSON_APPEND_BOOL(&r, "ok", true);
    BSON_APPEND_INT64(&r, "first", 0);
    BSON_APPEND_INT64(&r, "last", 0);
    BSON_APPEND_INT32(&r, "accepted", 0);
    BSON_APPEND_INT32(&r, "rejected", 0);
    BSON_APPEND_BOOL(&r, "dup", false);
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(&r, "errors", &arr);
    bson_append_array_end(&r, &arr);
    send_frames(d->router, &v[0], delim, &r);
    bson_destroy(&r);
    goto done;
  }
  if (nev > d->o.queue_events || bytes > d->o.queue_bytes) {
    add(&d->bad_requests, 1);
    zql_strbuf_addf(&s->why, "bad request: a batch of %zu events (%" PRIu64 " bytes) is larger than the queue (queue_events %" PRIu64 ", queue_bytes %" PRIu64 ")",
                    nev, bytes, d->o.queue_events, d->o.queue_bytes);
    reply_refused(d->router, &v[0], delim, batch, s->why.buf);
    goto done;
  }
  pthread_mutex_lock(&d->mu);
  bool draining = d->draining;
  bool room = d->q_events == 0 ||
              (d->q_events + nev <= d->o.queue_events && d->q_bytes + bytes <= d->o.queue_bytes);
  pthread_mutex_unlock(&d->mu);
  if (draining || !room) {
    if (!draining)
      add(&d->busy, 1);
    reply_refused(d->router, &v[0], delim, batch, draining ? "draining" : "busy");
    goto done;
  }
  item_t *it = item_get(d, ZQL_INGESTD_ACKED, nev);
  if (!it) {
    reply_refused(d->router, &v[0], delim, batch, "busy");
    goto done;
  }
  zmq_msg_init(&it->rid);
  zmq_msg_move(&it->rid, &v[0]);
  zmq_msg_init(&it->hdr);
  zmq_msg_move(&it->hdr, &v[i + 1]);
  for (size_t k = 0; k < nev; k++) {
    zmq_msg_init(&it->frames[k]);
    zmq_msg_move(&it->frames[k], &v[i + 2 + k]);
  }
  it->n = nev;
  it->bytes = bytes;
  it->delim = delim;
  memcpy(it->client, client, 16);
  it->batch = batch;
  it->received_ms = d->o.clock_ms(d->o.clock_arg);
  pthread_mutex_lock(&d->mu);
  push_locked(d, it, nev);
  pthread_mutex_unlock(&d->mu);
done:
  for (long k = 0; k < np; k++)
    zmq_msg_close(&v[k]);
}

/* Read what a PULL socket has, in chunks, while the queue has room. Returns false when
 * the queue is full (the caller stops polling PULL sockets until the writer wakes it). */
static bool handle_pull(zql_ingestd_t *d, zql_ingestd_source_t src, int64_t until_ms)
{
  void *sock = d->pull[src];
  for (int rounds = 0; rounds < 8 || until_ms; rounds++) {
    pthread_mutex_lock(&d->mu);
    if (full_locked(d)) {
      d->sock_blocked = true;
      pthread_mutex_unlock(&d->mu);
      return false;
    }
    uint64_t room_ev = d->o.queue_events - d->q_events;
    uint64_t room_bytes = d->o.queue_bytes - d->q_bytes;
    pthread_mutex_unlock(&d->mu);
    size_t max = room_ev < CHUNK_FRAMES ? (size_t)room_ev : CHUNK_FRAMES;
    item_t *it = item_get(d, src, CHUNK_FRAMES);
    if (!it)
      return true; /* out of memory: leave the frames in ZeroMQ for now */
    while (it->n < max && it->bytes < room_bytes) {
      zmq_msg_t *m = &it->frames[it->n];
      zmq_msg_init(m);
      if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(m);
        break;
      }
      it->bytes += zmq_msg_size(m) + ITEM_OVERHEAD;
      it->n++;
    }
    size_t got = it->n;
    if (got == 0) {
      pthread_mutex_lock(&d->mu);
      it->next = d->freelist;
      d->freelist = it;
      d->nfree++;
      pthread_mutex_unlock(&d->mu);
      return true;
    }
    add(&d->c[src].received, got);
    add(&d->c[src].bytes, it->bytes - got * ITEM_OVERHEAD);
    it->received_ms = d->o.clock_ms(d->o.clock_arg);
    pthread_mutex_lock(&d->mu);
    push_locked(d, it, got);
    pthread_mutex_unlock(&d->mu);
    if (got < max && it->bytes < room_bytes)
      return true; /* drained the socket */
    if (until_ms && zql_mono_ms() > until_ms)
      return true;
  }
  return true;
}

/* ZAP (RFC 27): allow CURVE clients whose public key is in the allow-list. */
static void handle_zap(zql_ingestd_t *d, sockstate_t *s)
{
  long np = recv_parts(d->zap, &s->parts, &s->cap);
  if (np <= 0)
    return;
  zmq_msg_t *v = s->parts;
  const char *status = "400", *text = "not allowed";
  char user[41] = "";
  if (np >= 6) {
    const char *mech = zmq_msg_data(&v[5]);
    size_t mlen = zmq_msg_size(&v[5]);
    char addr[128];
    size_t alen = zmq_msg_size(&v[3]) < sizeof addr - 1 ? zmq_msg_size(&v[3]) : sizeof addr - 1;
    memcpy(addr, zmq_msg_data(&v[3]), alen);
    addr[alen] = '\0';
    if (mlen == 5 && memcmp(mech, "CURVE", 5) == 0 && np >= 7 && zmq_msg_size(&v[6]) == 32) {
      const uint8_t *key = zmq_msg_data(&v[6]);
      zmq_z85_encode(user, key, 32);
      for (size_t i = 0; i < d->nallow; i++) {
        if (memcmp(d->allow[i], key, 32) == 0) {
          status = "200";
          text = "OK";
          break;
        }
      }
      if (status[0] != '2') {
        add(&d->curve_denied, 1);
        zql_log(ZQL_LOG_WARN, "curve: refused client key %s from %s: not in the allow-list", user, addr);
      }
    } else {
      add(&d->curve_denied, 1);
      zql_log(ZQL_LOG_WARN, "curve: refused a %.*s connection from %s: CURVE is required", (int)mlen, mech, addr);
    }
  }
  if (np >= 2) {
    zmq_send(d->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(d->zap, zmq_msg_data(&v[1]), zmq_msg_size(&v[1]), ZMQ_SNDMORE);
    zmq_send(d->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(d->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(d->zap, user, status[0] == '2' ? strlen(user) : 0, ZMQ_SNDMORE);
    zmq_send(d->zap, "", 0, 0);
  }
  for (long k = 0; k < np; k++)
    zmq_msg_close(&v[k]);
}

/* Messages from the writer: "R" + reply frames (forwarded to the ROUTER), "W" (room in
 * the queue again), "D" (the writer finished). Returns true on "D". */
static bool handle_reply(zql_ingestd_t *d, sockstate_t *s)
{
  long np = recv_parts(d->reply_in, &s->parts, &s->cap);
  if (np <= 0)
    return false;
  zmq_msg_t *v = s->parts;
  char tag = zmq_msg_size(&v[0]) ? *(char *)zmq_msg_data(&v[0]) : '?';
  if (tag == 'R' && d->router) {
    for (long k = 1; k < np; k++)
      zmq_msg_send(&v[k], d->router, (k + 1 < np ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
  }
  for (long k = 0; k < np; k++)
    zmq_msg_close(&v[k]);
  return tag == 'D';
}

static void close_pulls(zql_ingestd_t *d)
{
  for (int i = 0; i < 2; i++) {
    if (d->pull[i]) {
      zmq_close(d->pull[i]);
      d->pull[i] = NULL;
    }
  }
}

static void *socket_main(void *arg)
{
  zql_ingestd_t *d = arg;
  sockstate_t s = {NULL, 0, ZQL_STRBUF_INIT};
  bool stop = false, blocked = false;
  while (!stop) {
    zmq_pollitem_t items[6];
    int kind[6];
    int n = 0;
    items[n] = (zmq_pollitem_t){d->ctl_in, 0, ZMQ_POLLIN, 0};
    kind[n++] = 0;
    items[n] = (zmq_pollitem_t){d->reply_in, 0, ZMQ_POLLIN, 0};
    kind[n++] = 1;
    if (d->zap) {
      items[n] = (zmq_pollitem_t){d->zap, 0, ZMQ_POLLIN, 0};
      kind[n++] = 2;
    }
    if (d->router) {
      items[n] = (zmq_pollitem_t){d->router, 0, ZMQ_POLLIN, 0};
      kind[n++] = 3;
    }
    for (int p = 0; p < 2; p++) {
      if (d->pull[p] && !blocked) {
        items[n] = (zmq_pollitem_t){d->pull[p], 0, ZMQ_POLLIN, 0};
        kind[n++] = 4 + p;
      }
    }
    if (zmq_poll(items, n, -1) < 0) {
      if (errno == EINTR)
        continue;
      break; /* ETERM */
    }
    for (int k = 0; k < n; k++) {
      if (!(items[k].revents & ZMQ_POLLIN))
        continue;
      switch (kind[k]) {
      case 0: {
        char cmd[8] = "";
        int r = zmq_recv(d->ctl_in, cmd, sizeof cmd - 1, ZMQ_DONTWAIT);
        if (r <= 0)
          break;
        if (cmd[0] == 'S') {
          stop = true;
        } else if (cmd[0] == 'D') {
          /* take what ZeroMQ already buffered, within a bound, then no more */
          int64_t until = zql_mono_ms() + DRAIN_READ_MS;
          for (int p = 0; p < 2; p++) {
            while (d->pull[p] && !handle_pull(d, (zql_ingestd_source_t)p, until)) {
              /* full: wait for the writer to make room */
              pthread_mutex_lock(&d->mu);
              while (full_locked(d) && !d->writer_done)
                pthread_cond_wait(&d->cond_space, &d->mu);
              d->sock_blocked = false;
              pthread_mutex_unlock(&d->mu);
              if (zql_mono_ms() > until)
                break;
            }
          }
          close_pulls(d);
          pthread_mutex_lock(&d->mu);
          d->closed = true;
          pthread_cond_signal(&d->cond_writer);
          pthread_mutex_unlock(&d->mu);
        }
        break;
      }
      case 1:
        if (handle_reply(d, &s)) {
          pthread_mutex_lock(&d->mu);
          d->writer_done = true;
          pthread_cond_broadcast(&d->cond_space);
          pthread_mutex_unlock(&d->mu);
        }
        blocked = false; /* "W", or any reply: look at the PULL sockets again */
        break;
      case 2:
        handle_zap(d, &s);
        break;
      case 3:
        for (int r = 0; r < 64 && (zmq_poll(&items[k], 1, 0) > 0); r++)
          handle_acked(d, &s);
        break;
      default:
        if (!handle_pull(d, (zql_ingestd_source_t)(kind[k] - 4), 0))
          blocked = true;
        break;
      }
    }
  }
  close_pulls(d);
  zql_free(s.parts);
  zql_strbuf_release(&s.why);
  return NULL;
}

/* }==== */

/* {==== writer thread ======================================================= */

typedef struct cycle {
  bson_t **blocks; /* SLOT_BLOCK bson_t each; never moved (bson_t is not relocatable) */
  size_t nblocks, used;
  const bson_t **docs;
  size_t ndocs, capdocs;
  item_t **items;
  size_t nitems, capitems;
  zql_ackrec_t *recs;
  size_t nrecs, caprecs;
  uint32_t *dedup; /* open addressing over items[] (index + 1) */
  size_t dcap;
  zql_strbuf_t why, err;
  bool dl_added;
} cycle_t;

static bson_t *slot(cycle_t *c)
{
  size_t b = c->used / SLOT_BLOCK;
  if (b == c->nblocks) {
    bson_t **nb = zql_reallocarray(c->blocks, c->nblocks + 1, sizeof *nb);
    if (!nb)
      return NULL;
    c->blocks = nb;
    if (!(c->blocks[b] = zql_calloc(SLOT_BLOCK, sizeof(bson_t))))
      return NULL;
    c->nblocks++;
  }
  return &c->blocks[b][c->used++ % SLOT_BLOCK];
}

static bool grow(void **p, size_t *cap, size_t need, size_t size)
{
  if (need <= *cap)
    return true;
  size_t nc = *cap ? *cap : 256;
  while (nc < need)
    nc *= 2;
  void *np = zql_reallocarray(*p, nc, size);
  if (!np)
    return false;
  *p = np;
  *cap = nc;
  return true;
}

static const char *peer_of(zmq_msg_t *m)
{
  const char *p = zmq_msg_gets(m, "Peer-Address");
  return p;
}

/* Dead-letter one rejected event. */
static void dead_letter(zql_ingestd_t *d, cycle_t *c, int64_t now, zql_ingestd_source_t src,
                        const char *peer, zql_ingest_reason_t cls, const char *why,
                        const bson_t *doc, const void *raw, size_t rawlen)
{
  zql_strbuf_reset(&c->err);
  if (zql_deadletter_add(d->dl, now, d->source_name[src], peer, cls, why, doc, raw, rawlen,
                         &c->err) < 0)
    zql_log(ZQL_LOG_ERROR, "dead-letter: %s", c->err.buf);
  c->dl_added = true;
}

static void acked_error(item_t *it, size_t i, const char *why)
{
  if (it->nerrs >= ZQL_INGESTD_MAX_ERRORS)
    return;
  char key[16];
  const char *k;
  bson_uint32_to_string(it->nerrs++, &k, key, sizeof key);
  bson_t e;
  bson_append_document_begin(&it->errs, k, -1, &e);
  BSON_APPEND_INT32(&e, "i", (int32_t)i);
  BSON_APPEND_UTF8(&e, "error", why);
  bson_append_document_end(&it->errs, &e);
}

static void http_error(item_t *it, size_t i, const char *why)
{
  zql_ingestd_result_t *res = it->http->res;
  zql_ingestd_error_t *e = zql_reallocarray(res->errors, res->nerrors + 1, sizeof *e);
  if (!e) {
    it->http->rc = ZQL_E_NOMEM;
    return;
  }
  res->errors = e;
  e[res->nerrors].index = i;
  e[res->nerrors].why = zql_strndup(why, strlen(why));
  if (!e[res->nerrors].why)
    it->http->rc = ZQL_E_NOMEM;
  res->nerrors++;
}

/* Validate the events of one item into the cycle. */
static void validate_item(zql_ingestd_t *d, cycle_t *c, item_t *it)
{
  it->doc0 = c->ndocs;
  it->ndocs = 0;
  it->rejected = 0;
  size_t n = it->n;
  if (!grow((void **)&c->docs, &c->capdocs, c->ndocs + n, sizeof *c->docs)) {
    zql_log(ZQL_LOG_ERROR, "ingest: out of memory validating %zu events", n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const void *data;
    size_t len;
    const char *peer = NULL;
    zql_ingest_reason_t cls = ZQL_INGEST_OK;
    bson_t *out;
    int rc;
    zql_strbuf_reset(&c->why);
    if (it->src == ZQL_INGESTD_HTTP) {
      const zql_ingestd_event_t *e = &it->http->ev[i];
      peer = it->http->peer;
      if (!e->doc) {
        add(&d->c[ZQL_INGESTD_HTTP].rejected, 1);
        it->rejected++;
        dead_letter(d, c, it->received_ms, it->src, peer, e->cls ? e->cls : ZQL_INGEST_MALFORMED,
                    e->reason ? e->reason : "rejected", e->received, e->raw,
                    e->raw ? e->rawlen : 0);
        http_error(it, i, e->reason ? e->reason : "rejected");
        continue;
      }
      data = bson_get_data(e->doc);
      len = e->doc->len;
    } else {
      data = zmq_msg_data(&it->frames[i]);
      len = zmq_msg_size(&it->frames[i]);
    }
    /* every slot taken is initialised by zql_ingest_* (write_cycle destroys them all) */
    if (!(out = slot(c))) {
      rc = ZQL_E_NOMEM;
    } else if (it->src == ZQL_INGESTD_JSON) {
      rc = zql_ingest_json(data, len, &d->o.limits, out, &cls, &c->why);
    } else {
      rc = zql_ingest_bson(data, len, &d->o.limits, out, &cls, &c->why);
    }
    if (rc == 0) {
      c->docs[c->ndocs++] = out;
      it->ndocs++;
      continue;
    }
    if (rc == ZQL_E_NOMEM && !c->why.len)
      zql_strbuf_adds(&c->why, "out of memory validating the event");
    add(&d->c[it->src].rejected, 1);
    it->rejected++;
    if (!peer && it->src != ZQL_INGESTD_HTTP)
      peer = peer_of(&it->frames[i]);
    const char *why = c->why.oom ? "rejected" : c->why.buf;
    bool has_doc = out && zql_ingest_reason_has_doc(cls);
    dead_letter(d, c, it->received_ms, it->src, peer, cls == ZQL_INGEST_OK ? ZQL_INGEST_MALFORMED : cls, why,
                has_doc ? out : NULL, data, len);
    if (it->src == ZQL_INGESTD_ACKED)
      acked_error(it, i, why);
    else if (it->src == ZQL_INGESTD_HTTP)
      http_error(it, i, why);
  }
  add(&d->c[it->src].accepted, it->ndocs);
}

static uint64_t item_key_hash(const item_t *it)
{
  uint64_t h = (uint64_t)it->batch * 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 16; i++)
    h = (h ^ it->client[i]) * 0x100000001B3ull;
  return h;
}

/* The index of an earlier acked request of the cycle with the same (client, batch), or
 * -1 (then this one is entered). */
static int cycle_dedup(cycle_t *c, size_t idx)
{
  size_t mask = c->dcap - 1;
  item_t *it = c->items[idx];
  for (size_t s = (size_t)item_key_hash(it) & mask;; s = (s + 1) & mask) {
    if (c->dedup[s] == 0) {
      c->dedup[s] = (uint32_t)idx + 1;
      return -1;
    }
    item_t *o = c->items[c->dedup[s] - 1];
    if (o->batch == it->batch && memcmp(o->client, it->client, 16) == 0)
      return (int)(c->dedup[s] - 1);
  }
}

static void reply_acked(zql_ingestd_t *d, item_t *it, bool ok, const char *error,
                        const zql_ackrec_t *r, bool dup)
{
  bson_t rep;
  bson_init(&rep);
  BSON_APPEND_INT64(&rep, "batch", it->batch);
  BSON_APPEND_BOOL(&rep, "ok", ok);
  if (!ok) {
    BSON_APPEND_UTF8(&rep, "error", error);
  } else {
    BSON_APPEND_INT64(&rep, "first", r->first);
    BSON_APPEND_INT64(&rep, "last", r->last);
    BSON_APPEND_INT32(&rep, "accepted", (int32_t)r->accepted);
    BSON_APPEND_INT32(&rep, "rejected", (int32_t)r->rejected);
    BSON_APPEND_BOOL(&rep, "dup", dup);
    if (dup) {
      bson_t arr;
      BSON_APPEND_ARRAY_BEGIN(&rep, "errors", &arr);
      bson_append_array_end(&rep, &arr);
    } else {
      BSON_APPEND_ARRAY(&rep, "errors", &it->errs);
    }
    add(&d->batches_acked, 1);
    if (dup)
      add(&d->batches_dup, 1);
  }
  zmq_send(d->reply_out, "R", 1, ZMQ_SNDMORE);
  zmq_msg_send(&it->rid, d->reply_out, ZMQ_SNDMORE);
  zmq_msg_init(&it->rid); /* sent: the item's copy is empty now */
  if (it->delim)
    zmq_send(d->reply_out, "", 0, ZMQ_SNDMORE);
  zmq_send(d->reply_out, MAGIC, 4, ZMQ_SNDMORE);
  zmq_send(d->reply_out, bson_get_data(&rep), rep.len, 0);
  bson_destroy(&rep);
}

/* Remove the events of failed items from docs[] (they are not appended). */
static void drop_failed_docs(cycle_t *c)
{
  size_t w = 0;
  for (size_t k = 0; k < c->nitems; k++) {
    item_t *it = c->items[k];
    size_t from = it->doc0;
    it->doc0 = w;
    if (it->failed) {
      it->ndocs = 0;
      continue;
    }
    memmove(&c->docs[w], &c->docs[from], it->ndocs * sizeof *c->docs);
    w += it->ndocs;
  }
  c->ndocs = w;
}

static void write_cycle(zql_ingestd_t *d, cycle_t *c)
{
  c->ndocs = 0;
  c->nrecs = 0;
  c->dl_added = false;
  bool any_acked = false;
  /* dedup table for the cycle's acked requests */
  size_t nacked = 0;
  for (size_t k = 0; k < c->nitems; k++)
    if (c->items[k]->src == ZQL_INGESTD_ACKED)
      nacked++;
  if (nacked) {
    size_t cap = 64;
    while (cap < 2 * nacked)
      cap *= 2;
    if (cap > c->dcap) {
      uint32_t *t = zql_reallocarray(c->dedup, cap, sizeof *t);
      if (t) {
        c->dedup = t;
        c->dcap = cap;
      }
    }
    if (c->dcap >= 2 * nacked)
      memset(c->dedup, 0, c->dcap * sizeof *c->dedup);
  }
  /* 1-2: validate, find dups */
  for (size_t k = 0; k < c->nitems; k++) {
    item_t *it = c->items[k];
    it->dup_of = -1;
    it->dup_journal = false;
    it->failed = false;
    it->doc0 = c->ndocs;
    it->ndocs = 0;
    it->rejected = 0;
    if (it->src == ZQL_INGESTD_ACKED) {
      bson_init(&it->errs);
      it->nerrs = 0;
      if (zql_ackjournal_find(d->journal, it->client, it->batch, &it->rec)) {
        it->dup_journal = true;
        continue;
      }
      if (c->dcap >= 2 * nacked && (it->dup_of = cycle_dedup(c, k)) >= 0)
        continue;
      any_acked = true;
    }
    validate_item(d, c, it);
  }
  /* 3: journal records, with the ranges the append will give */
  int64_t base = d->next_seq;
  if (any_acked && grow((void **)&c->recs, &c->caprecs, nacked, sizeof *c->recs)) {
    for (size_t k = 0; k < c->nitems; k++) {
      item_t *it = c->items[k];
      if (it->src != ZQL_INGESTD_ACKED || it->dup_journal || it->dup_of >= 0)
        continue;
      zql_ackrec_t *r = &it->rec;
      memcpy(r->client, it->client, 16);
      r->batch = it->batch;
      r->first = it->ndocs ? base + (int64_t)it->doc0 : 0;
      r->last = it->ndocs ? r->first + (int64_t)it->ndocs - 1 : 0;
      r->accepted = (uint32_t)it->ndocs;
      r->rejected = it->rejected;
      c->recs[c->nrecs++] = *r;
    }
    zql_strbuf_reset(&c->err);
    if (zql_ackjournal_add(d->journal, c->recs, c->nrecs, &c->err) < 0) {
      add(&d->log_errors, 1);
      zql_log(ZQL_LOG_ERROR, "acked ingest: %s", c->err.buf);
      for (size_t k = 0; k < c->nitems; k++) {
        item_t *it = c->items[k];
        if (it->src == ZQL_INGESTD_ACKED && !it->dup_journal && it->dup_of < 0)
          it->failed = true;
      }
      c->nrecs = 0;
      drop_failed_docs(c);
    }
  } else if (any_acked) {
    for (size_t k = 0; k < c->nitems; k++)
      if (c->items[k]->src == ZQL_INGESTD_ACKED && !c->items[k]->dup_journal && c->items[k]->dup_of < 0)
        c->items[k]->failed = true;
    drop_failed_docs(c);
  }
  /* 4-5: append, sync */
  int64_t first = 0;
  int rc = 0;
  const char *log_error = NULL;
  zql_strbuf_reset(&c->err);
  if (c->ndocs > 0) {
    rc = zql_evlog_append(d->o.log, c->docs, c->ndocs, &first, &c->err);
    if (rc == 0 && first != base && c->nrecs > 0) {
      /* someone else appended to the log: correct the records before anyone is told */
      zql_log(ZQL_LOG_ERROR, "acked ingest: the event log was appended to by another writer (expected _seq %" PRId64 ", got %" PRId64 ")",
              base, first);
      for (size_t i = 0; i < c->nrecs; i++) {
        if (c->recs[i].accepted) {
          c->recs[i].first += first - base;
          c->recs[i].last += first - base;
        }
      }
      for (size_t k = 0; k < c->nitems; k++) {
        item_t *it = c->items[k];
        if (it->src == ZQL_INGESTD_ACKED && it->ndocs && !it->failed && !it->dup_journal && it->dup_of < 0) {
          it->rec.first += first - base;
          it->rec.last += first - base;
        }
      }
      zql_strbuf_t e2 = ZQL_STRBUF_INIT;
      if (zql_ackjournal_add(d->journal, c->recs, c->nrecs, &e2) < 0) {
        rc = ZQL_E_IO;
        zql_strbuf_addf(&c->err, "%s", e2.buf);
      }
      zql_strbuf_release(&e2);
    }
  }
  bool synced_needed = c->nrecs > 0;
  if (rc == 0 && synced_needed)
    rc = zql_evlog_sync(d->o.log, &c->err);
  if (rc < 0) {
    add(&d->log_errors, 1);
    log_error = c->err.oom ? "event log failure" : c->err.buf;
    zql_log(ZQL_LOG_ERROR, "ingest: %s", log_error);
    if (c->nrecs > 0) {
      /* the records name ranges that are not durable: a retry must log anew */
      zql_strbuf_t e2 = ZQL_STRBUF_INIT;
      if (first == 0 && rc == ZQL_E_BAD_EVENT) {
        if (zql_ackjournal_revoke(d->journal, c->recs, c->nrecs, &e2) < 0)
          zql_log(ZQL_LOG_ERROR, "acked ingest: %s", e2.buf);
      }
      zql_ackjournal_forget(d->journal, c->recs, c->nrecs);
      zql_strbuf_release(&e2);
    }
    if (first == 0) {
      /* nothing was appended: keep the unacknowledged events in the dead-letter file */
      for (size_t k = 0; k < c->nitems; k++) {
        item_t *it = c->items[k];
        if (it->src == ZQL_INGESTD_ACKED)
          continue;
        for (size_t i = 0; i < it->ndocs; i++) {
          const bson_t *doc = c->docs[it->doc0 + i];
          dead_letter(d, c, it->received_ms, it->src, it->src == ZQL_INGESTD_HTTP ? it->http->peer : NULL,
                      ZQL_INGEST_LOG, log_error, doc, bson_get_data(doc), doc->len);
        }
      }
    }
    d->next_seq = zql_evlog_last_seq(d->o.log) + 1;
  } else if (c->ndocs > 0) {
    d->next_seq = first + (int64_t)c->ndocs;
  }
  /* 6: dead letters, callback, replies */
  if (c->dl_added) {
    zql_strbuf_t e2 = ZQL_STRBUF_INIT;
    if (zql_deadletter_flush(d->dl, d->o.fsync != ZQL_EVLOG_SYNC_NONE, &e2) < 0)
      zql_log(ZQL_LOG_ERROR, "dead-letter: %s", e2.buf);
    zql_strbuf_release(&e2);
    zql_deadletter_stats_t ds;
    zql_deadletter_stats(d->dl, &ds);
    atomic_store(&d->dl_lines, ds.lines);
    atomic_store(&d->dl_lost, ds.lines_lost);
  }
  if (rc == 0 && c->ndocs > 0 && d->o.appended)
    d->o.appended(d->o.appended_arg, first, c->docs, c->ndocs);
  for (size_t k = 0; k < c->nitems; k++) {
    item_t *it = c->items[k];
    if (it->src == ZQL_INGESTD_ACKED) {
      if (it->dup_journal)
        reply_acked(d, it, true, NULL, &it->rec, true);
      else if (it->dup_of >= 0 && (c->items[it->dup_of]->failed || rc < 0))
        reply_acked(d, it, false, "event log failure; retry later", NULL, false);
      else if (it->dup_of >= 0)
        reply_acked(d, it, true, NULL, &c->items[it->dup_of]->rec, true);
      else if (it->failed || rc < 0)
        reply_acked(d, it, false, "event log failure; retry later", NULL, false);
      else
        reply_acked(d, it, true, NULL, &it->rec, false);
      bson_destroy(&it->errs);
    } else if (it->src == ZQL_INGESTD_HTTP) {
      http_wait_t *w = it->http;
      zql_ingestd_result_t *res = w->res;
      res->rejected = it->rejected;
      if (rc < 0) {
        w->rc = rc;
        zql_strbuf_adds(&w->err, log_error);
      } else {
        res->accepted = it->ndocs;
        res->first = it->ndocs ? first + (int64_t)it->doc0 : 0;
        res->last = it->ndocs ? res->first + (int64_t)it->ndocs - 1 : 0;
      }
    }
  }
  /* release: pool slots, frames, queue accounting, HTTP waiters */
  for (size_t i = 0; i < c->used; i++)
    bson_destroy(&c->blocks[i / SLOT_BLOCK][i % SLOT_BLOCK]);
  c->used = 0;
  uint64_t ev = 0, bytes = 0;
  pthread_mutex_lock(&d->mu);
  for (size_t k = 0; k < c->nitems; k++) {
    item_t *it = c->items[k];
    ev += it->n;
    bytes += it->bytes;
    if (it->src == ZQL_INGESTD_HTTP) {
      it->http->done = true;
      it->n = 0;
      item_destroy(it);
      continue;
    }
    item_clear(it);
    if (d->nfree < MAX_FREE_ITEMS) {
      it->next = d->freelist;
      d->freelist = it;
      d->nfree++;
    } else {
      item_destroy(it);
    }
  }
  d->q_events -= ev;
  d->q_bytes -= bytes;
  bool wake = d->sock_blocked && !full_locked(d);
  if (wake)
    d->sock_blocked = false;
  pthread_cond_broadcast(&d->cond_space);
  pthread_mutex_unlock(&d->mu);
  if (wake)
    zmq_send(d->reply_out, "W", 1, 0);
  c->nitems = 0;
  zql_strbuf_t e3 = ZQL_STRBUF_INIT;
  if (zql_ackjournal_maybe_compact(d->journal, false, &e3) < 0)
    zql_log(ZQL_LOG_WARN, "acked ingest: compacting the journal: %s", e3.buf);
  zql_strbuf_release(&e3);
}

static void *writer_main(void *arg)
{
  zql_ingestd_t *d = arg;
  cycle_t c;
  memset(&c, 0, sizeof c);
  zql_strbuf_init(&c.why);
  zql_strbuf_init(&c.err);
  for (;;) {
    pthread_mutex_lock(&d->mu);
    while (!d->head && !d->closed)
      pthread_cond_wait(&d->cond_writer, &d->mu);
    item_t *list = d->head;
    d->head = d->tail = NULL;
    bool closed = d->closed;
    pthread_mutex_unlock(&d->mu);
    if (!list && closed)
      break;
    size_t nlist = 0;
    for (item_t *it = list; it; it = it->next)
      nlist++;
    if (!grow((void **)&c.items, &c.capitems, nlist, sizeof *c.items)) {
      /* out of memory: put the items back and try again a little later */
      zql_log(ZQL_LOG_ERROR, "ingest: out of memory in the writer; retrying");
      pthread_mutex_lock(&d->mu);
      item_t *t = list;
      while (t->next)
        t = t->next;
      t->next = d->head;
      if (!d->head)
        d->tail = t;
      d->head = list;
      pthread_mutex_unlock(&d->mu);
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
      continue;
    }
    for (item_t *it = list; it; it = it->next)
      c.items[c.nitems++] = it;
    write_cycle(d, &c);
  }
  zql_strbuf_t e = ZQL_STRBUF_INIT;
  if (zql_evlog_sync(d->o.log, &e) < 0)
    zql_log(ZQL_LOG_ERROR, "ingest: %s", e.buf);
  zql_strbuf_release(&e);
  for (size_t i = 0; i < c.nblocks; i++)
    zql_free(c.blocks[i]);
  zql_free(c.blocks);
  zql_free(c.docs);
  zql_free(c.items);
  zql_free(c.recs);
  zql_free(c.dedup);
  zql_strbuf_release(&c.why);
  zql_strbuf_release(&c.err);
  zmq_send(d->reply_out, "D", 1, 0);
  return NULL;
}

/* }==== */

/* {==== API ================================================================= */

void *zql_ingestd_zmq_context(zql_ingestd_t *d)
{
  return d->ctx;
}

int zql_ingestd_curve_server(zql_ingestd_t *d, void *sock, zql_strbuf_t *err)
{
  if (!d->curve)
    return 0;
  int one = 1;
  if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
      zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, d->curve_secret, 40) < 0 ||
      zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "zqld", 4) < 0)
    return zql_fail(err, ZQL_E_IO, "cannot make a CURVE server socket: %s", zmq_strerror(zmq_errno()));
  return 0;
}

const char *zql_ingestd_endpoint(const zql_ingestd_t *d, zql_ingestd_source_t src)
{
  return (unsigned)src < ZQL_INGESTD_SOURCES ? d->endpoint[src] : NULL;
}

static int make_socket(zql_ingestd_t *d, int type, const char *ep, zql_ingestd_source_t src,
                       void **out, zql_strbuf_t *err)
{
  void *s = zmq_socket(d->ctx, type);
  if (!s)
    return zql_fail(err, ZQL_E_IO, "cannot create a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
  int hwm = d->o.hwm, zero = 0;
  int64_t maxmsg = MAX_FRAME;
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  if (type == ZMQ_ROUTER) {
    int linger = ROUTER_LINGER_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  } else {
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  }
  int rc = zql_ingestd_curve_server(d, s, err);
  if (rc == 0 && zmq_bind(s, ep) < 0)
    rc = zql_fail(err, ZQL_E_IO, "cannot bind the %s endpoint '%s': %s", zql_ingestd_source_name(src), ep,
              zmq_strerror(zmq_errno()));
  if (rc < 0) {
    zmq_close(s);
    return rc;
  }
  char last[256];
  size_t ll = sizeof last;
  if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &ll) < 0)
    snprintf(last, sizeof last, "%s", ep);
  d->endpoint[src] = zql_strndup(last, strlen(last));
  const char *colon = strrchr(last, ':');
  snprintf(d->source_name[src], sizeof d->source_name[src], "%s:%.60s", zql_ingestd_source_name(src),
           colon ? colon + 1 : last);
  *out = s;
  return d->endpoint[src] ? 0 : zql_fail(err, ZQL_E_NOMEM, "out of memory");
}

static int make_pair(zql_ingestd_t *d, char *addr, size_t addrlen, const char *what, void **bound,
                     void **connected, zql_strbuf_t *err)
{
  snprintf(addr, addrlen, "inproc://zql-ingestd-%s-%p", what, (void *)d);
  *bound = zmq_socket(d->ctx, ZMQ_PAIR);
  *connected = zmq_socket(d->ctx, ZMQ_PAIR);
  int zero = 0;
  if (*bound && *connected) {
    zmq_setsockopt(*bound, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(*connected, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(*bound, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(*connected, ZMQ_LINGER, &zero, sizeof zero);
  }
  if (!*bound || !*connected || zmq_bind(*bound, addr) < 0 || zmq_connect(*connected, addr) < 0)
    return zql_fail(err, ZQL_E_IO, "cannot create the inproc socket '%s': %s", addr, zmq_strerror(zmq_errno()));
  return 0;
}

static int setup_curve(zql_ingestd_t *d, zql_strbuf_t *err)
{
  const char *sk = d->o.curve_secret;
  char pub[41];
  if (strlen(sk) != 40 || zmq_curve_public(pub, sk) < 0)
    return zql_fail(err, ZQL_E_USAGE, "the CURVE secret key must be 40 characters of Z85 (zql keygen)");
  memcpy(d->curve_secret, sk, 41);
  d->curve = true;
  if (d->o.ncurve_allow) {
    d->allow = zql_calloc(d->o.ncurve_allow, sizeof *d->allow);
    if (!d->allow)
      return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < d->o.ncurve_allow; i++) {
    const char *k = d->o.curve_allow[i];
    if (!k || strlen(k) != 40 || !zmq_z85_decode(d->allow[i], k))
      return zql_fail(err, ZQL_E_USAGE, "allowed CURVE key %zu is not 40 characters of Z85: '%s'", i + 1,
                  k ? k : "");
  }
  d->nallow = d->o.ncurve_allow;
  d->zap = zmq_socket(d->ctx, ZMQ_REP);
  int zero = 0;
  if (d->zap)
    zmq_setsockopt(d->zap, ZMQ_LINGER, &zero, sizeof zero);
  if (!d->zap || zmq_bind(d->zap, "inproc://zeromq.zap.01") < 0)
    return zql_fail(err, ZQL_E_IO, "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
  return 0;
}

static char *join_path(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *p = zql_malloc(la + lb + 2);
  if (p) {
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
  }
  return p;
}

int zql_ingestd_start(const zql_ingestd_opts_t *o, zql_ingestd_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  if (!o->log || !o->data_dir)
    return zql_fail(err, ZQL_E_USAGE, "ingest needs an open event log and a data directory");
  zql_ingestd_t *d = zql_calloc(1, sizeof *d);
  if (!d)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  d->o = *o;
  if (d->o.hwm <= 0)
    d->o.hwm = DEFAULT_HWM;
  if (!d->o.queue_events)
    d->o.queue_events = DEFAULT_QUEUE_EVENTS;
  if (!d->o.queue_bytes)
    d->o.queue_bytes = DEFAULT_QUEUE_BYTES;
  if (!d->o.clock_ms)
    d->o.clock_ms = zql_wall_clock;
  pthread_mutex_init(&d->mu, NULL);
  pthread_mutex_init(&d->api_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->cond_writer, &ca);
  pthread_cond_init(&d->cond_space, &ca);
  pthread_condattr_destroy(&ca);
  snprintf(d->source_name[ZQL_INGESTD_HTTP], sizeof d->source_name[0], "http");
  for (int s = 0; s < ZQL_INGESTD_HTTP; s++)
    snprintf(d->source_name[s], sizeof d->source_name[0], "%s", zql_ingestd_source_name((zql_ingestd_source_t)s));
  int rc = 0;
  d->data_dir = zql_strndup(o->data_dir, strlen(o->data_dir));
  d->dl_dir = o->dead_letter && *o->dead_letter ? zql_strndup(o->dead_letter, strlen(o->dead_letter))
                                                : join_path(o->data_dir, "deadletter");
  char *jpath = join_path(o->data_dir, "ingest/acked.jnl");
  if (!d->data_dir || !d->dl_dir || !jpath) {
    zql_free(jpath);
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    goto bad;
  }
  d->next_seq = zql_evlog_last_seq(o->log) + 1;
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  zql_ackjournal_opts_t jo = {0, 0, 0, d->o.clock_ms, d->o.clock_arg, &notes};
  rc = zql_ackjournal_open(jpath, d->next_seq - 1, &jo, &d->journal, err);
  zql_free(jpath);
  if (notes.len) {
    char *line = notes.buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = '\0';
      zql_log(ZQL_LOG_WARN, "%s", line);
      line = nl + 1;
    }
  }
  zql_strbuf_release(&notes);
  if (rc < 0)
    goto bad;
  if ((rc = zql_deadletter_open(d->dl_dir, &d->dl, err)) < 0)
    goto bad;
  if (o->zmq_ctx) {
    d->ctx = o->zmq_ctx;
  } else {
    d->ctx = zmq_ctx_new();
    d->own_ctx = true;
    if (!d->ctx) {
      rc = zql_fail(err, ZQL_E_IO, "cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
      goto bad;
    }
  }
  if (o->curve_secret && *o->curve_secret && (rc = setup_curve(d, err)) < 0)
    goto bad;
  if ((rc = make_pair(d, d->ctl_addr, sizeof d->ctl_addr, "ctl", &d->ctl_in, &d->ctl_out, err)) < 0 ||
      (rc = make_pair(d, d->reply_addr, sizeof d->reply_addr, "reply", &d->reply_in, &d->reply_out, err)) < 0)
    goto bad;
  if (o->bson && *o->bson && (rc = make_socket(d, ZMQ_PULL, o->bson, ZQL_INGESTD_BSON, &d->pull[0], err)) < 0)
    goto bad;
  if (o->json && *o->json && (rc = make_socket(d, ZMQ_PULL, o->json, ZQL_INGESTD_JSON, &d->pull[1], err)) < 0)
    goto bad;
  if (o->acked && *o->acked && (rc = make_socket(d, ZMQ_ROUTER, o->acked, ZQL_INGESTD_ACKED, &d->router, err)) < 0)
    goto bad;
  if (pthread_create(&d->writer_thread, NULL, writer_main, d) != 0) {
    rc = zql_fail(err, ZQL_E_IO, "cannot start the ingest writer thread");
    goto bad;
  }
  d->writer_started = true;
  if (pthread_create(&d->sock_thread, NULL, socket_main, d) != 0) {
    rc = zql_fail(err, ZQL_E_IO, "cannot start the ingest socket thread");
    goto bad;
  }
  d->sock_started = true;
  *out = d;
  return 0;
bad:
  zql_ingestd_free(d);
  return rc;
}

static void send_ctl(zql_ingestd_t *d, const char *cmd)
{
  pthread_mutex_lock(&d->api_mu);
  zmq_send(d->ctl_out, cmd, strlen(cmd), 0);
  pthread_mutex_unlock(&d->api_mu);
}

int zql_ingestd_drain(zql_ingestd_t *d, int64_t timeout_ms, zql_strbuf_t *err)
{
  pthread_mutex_lock(&d->mu);
  bool first = !d->draining;
  d->draining = true;
  pthread_mutex_unlock(&d->mu);
  if (first) {
    if (d->sock_started) {
      send_ctl(d, "DRAIN");
    } else {
      pthread_mutex_lock(&d->mu);
      d->closed = true;
      pthread_cond_signal(&d->cond_writer);
      pthread_mutex_unlock(&d->mu);
    }
  }
  if (!d->writer_started)
    return 0;
  struct timespec until;
  if (timeout_ms > 0)
    deadline_ts(&until, timeout_ms);
  pthread_mutex_lock(&d->mu);
  int rc = 0;
  while (!d->writer_done) {
    if (!d->sock_started) {
      pthread_mutex_unlock(&d->mu);
      pthread_join(d->writer_thread, NULL);
      d->writer_started = false;
      pthread_mutex_lock(&d->mu);
      d->writer_done = true;
      break;
    }
    if (timeout_ms > 0) {
      if (pthread_cond_timedwait(&d->cond_space, &d->mu, &until) == ETIMEDOUT && !d->writer_done) {
        rc = zql_fail(err, ZQL_E_BUSY, "draining: %" PRIu64 " events still queued after %" PRId64 " ms",
                  d->q_events, timeout_ms);
        break;
      }
    } else {
      pthread_cond_wait(&d->cond_space, &d->mu);
    }
  }
  pthread_mutex_unlock(&d->mu);
  return rc;
}

int zql_ingestd_submit(zql_ingestd_t *d, const zql_ingestd_event_t *ev, size_t n,
                       const char *peer, zql_ingestd_result_t *res, int64_t timeout_ms,
                       zql_strbuf_t *err)
{
  memset(res, 0, sizeof *res);
  if (n == 0)
    return 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += (ev[i].doc ? ev[i].doc->len : ev[i].rawlen) + ITEM_OVERHEAD;
  if (n > d->o.queue_events || bytes > d->o.queue_bytes)
    return zql_fail(err, ZQL_E_TOO_LARGE, "%zu events (%" PRIu64 " bytes) are more than the ingest queue holds (queue_events %" PRIu64 ", queue_bytes %" PRIu64 ")",
                n, bytes, d->o.queue_events, d->o.queue_bytes);
  item_t *it = zql_calloc(1, sizeof *it);
  if (!it)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  http_wait_t w = {ev, peer, res, false, 0, ZQL_STRBUF_INIT};
  it->src = ZQL_INGESTD_HTTP;
  it->n = n;
  it->bytes = bytes;
  it->http = &w;
  it->received_ms = d->o.clock_ms(d->o.clock_arg);
  struct timespec until;
  if (timeout_ms > 0)
    deadline_ts(&until, timeout_ms);
  pthread_mutex_lock(&d->mu);
  for (;;) {
    if (d->draining) {
      pthread_mutex_unlock(&d->mu);
      zql_free(it);
      add(&d->busy, 1);
      return zql_fail(err, ZQL_E_BUSY, "draining");
    }
    if (d->q_events == 0 || (d->q_events + n <= d->o.queue_events && d->q_bytes + bytes <= d->o.queue_bytes))
      break;
    if (timeout_ms <= 0 || pthread_cond_timedwait(&d->cond_space, &d->mu, &until) == ETIMEDOUT) {
      pthread_mutex_unlock(&d->mu);
      zql_free(it);
      add(&d->busy, 1);
      return zql_fail(err, ZQL_E_BUSY, "the ingest queue is full");
    }
  }
  add(&d->c[ZQL_INGESTD_HTTP].received, n);
  add(&d->c[ZQL_INGESTD_HTTP].bytes, bytes - n * ITEM_OVERHEAD);
  push_locked(d, it, n);
  while (!w.done)
    pthread_cond_wait(&d->cond_space, &d->mu);
  pthread_mutex_unlock(&d->mu);
  int rc = w.rc;
  if (rc < 0)
    zql_fail(err, rc, "%s", w.err.len ? w.err.buf : "out of memory");
  zql_strbuf_release(&w.err);
  return rc;
}

void zql_ingestd_result_release(zql_ingestd_result_t *res)
{
  for (size_t i = 0; i < res->nerrors; i++)
    zql_free(res->errors[i].why);
  zql_free(res->errors);
  memset(res, 0, sizeof *res);
}

void zql_ingestd_stats(zql_ingestd_t *d, zql_ingestd_stats_t *out)
{
  memset(out, 0, sizeof *out);
  for (int s = 0; s < ZQL_INGESTD_SOURCES; s++) {
    out->src[s].received = get(&d->c[s].received);
    out->src[s].accepted = get(&d->c[s].accepted);
    out->src[s].rejected = get(&d->c[s].rejected);
    out->src[s].bytes = get(&d->c[s].bytes);
  }
  pthread_mutex_lock(&d->mu);
  out->queue_events = d->q_events;
  out->queue_bytes = d->q_bytes;
  out->draining = d->draining;
  pthread_mutex_unlock(&d->mu);
  out->busy = get(&d->busy);
  out->batches_acked = get(&d->batches_acked);
  out->batches_dup = get(&d->batches_dup);
  out->bad_requests = get(&d->bad_requests);
  out->curve_denied = get(&d->curve_denied);
  out->log_errors = get(&d->log_errors);
  out->deadletter_lines = get(&d->dl_lines);
  out->deadletter_lost = get(&d->dl_lost);
  out->last_seq = zql_evlog_last_seq(d->o.log);
  out->durable_seq = zql_evlog_durable_seq(d->o.log);
}

void zql_ingestd_free(zql_ingestd_t *d)
{
  if (!d)
    return;
  if (d->writer_started)
    zql_ingestd_drain(d, 0, NULL);
  if (d->sock_started) {
    send_ctl(d, "STOP");
    pthread_join(d->sock_thread, NULL);
  }
  if (d->writer_started)
    pthread_join(d->writer_thread, NULL);
  /* whatever is left (a start that failed half-way) */
  for (item_t *it = d->head; it;) {
    item_t *next = it->next;
    item_clear(it);
    item_destroy(it);
    it = next;
  }
  while (d->freelist) {
    item_t *next = d->freelist->next;
    item_destroy(d->freelist);
    d->freelist = next;
  }
  void *socks[] = {d->pull[0], d->pull[1], d->router, d->zap, d->reply_in, d->reply_out, d->ctl_in, d->ctl_out};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(socks); i++)
    if (socks[i])
      zmq_close(socks[i]);
  if (d->own_ctx && d->ctx)
    zmq_ctx_term(d->ctx);
  zql_ackjournal_close(d->journal);
  if (d->dl) {
    zql_deadletter_flush(d->dl, d->o.fsync != ZQL_EVLOG_SYNC_NONE, NULL);
    zql_deadletter_close(d->dl);
  }
  for (int s = 0; s < ZQL_INGESTD_SOURCES; s++)
    zql_free(d->endpoint[s]);
  zql_free(d->allow);
  zql_free(d->data_dir);
  zql_free(d->dl_dir);
  pthread_mutex_destroy(&d->mu);
  pthread_mutex_destroy(&d->api_mu);
  pthread_cond_destroy(&d->cond_writer);
  pthread_cond_destroy(&d->cond_space);
  zql_free(d);
}

/* }==== */
