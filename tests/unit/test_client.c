/*
 * test_client.c -- unit tests of the acked-ingest client library (runtime/client.c).
 *
 * The server side is a protocol-exact test responder: a ROUTER socket served by a thread
 * of this test (its own ZeroMQ context) that checks every request as zqld must (frame 0
 * "ZQA1", a header with a 16-byte binary subtype 4 client id, an int64 batch > 0 and an
 * int32 n equal to the number of event frames), "logs" the events (a _seq counter and a
 * count per event key `k`, so a duplicate shows), remembers (client, batch) -> range like
 * the dedup journal, and answers per the protocol. Knobs make it misbehave: drop answers,
 * answer "busy", refuse batches, restart (close and rebind its socket) right after
 * logging a batch without answering, require CURVE with a ZAP allow list.
 *
 * Covered: batching by count, bytes and age; the ids (client id constant, batch ids
 * 1, 2, ...); per-event rejections with global indices, and the unlisted ones; resend
 * with the same id after a lost answer (dup); busy backoff timing; a restarted server
 * (the disconnect triggers the resend, nothing is logged twice); CURVE with the right,
 * a foreign and a wrong key; JSON with $datetime and $date; the in-flight window and
 * send_timeout; a batch refused as a whole; no server; invalid options and keys; key
 * files; out of memory at connect. Timeouts are short (the whole group runs in ~2 s).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/base/alloc.h"
#include "runtime/zql_client.h"

int zql_unit_client(void); /* tests/unit/unit.h lists the groups */

#define MAXK 4096     /* event keys k counted by the responder */
#define MAXREQ 1024   /* requests remembered */
#define MAXREC 1024   /* dedup records */
#define MAXDOCS 64    /* logged documents kept */

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* {==== the responder */

typedef struct {
  uint8_t client[16];
  int64_t batch;
  int64_t first, last;
  int32_t accepted, rejected;
} rec_t;

typedef struct {
  uint8_t client[16];
  int64_t batch;
  int32_t n;
  int64_t at; /* mono_ms() */
} req_t;

typedef struct {
  /* knobs: set before responder_start, or under mu */
  int drop;            /* the next N logged batches get no answer */
  int busy;            /* the next N requests are answered "busy" */
  const char *refuse;  /* answer every request ok:false with this error */
  int restart_at;      /* the Nth request: log it, answer nothing, close and rebind */
  bool curve;
  char secret[41], public_key[41];
  char allow[41];      /* with curve: the one client key the ZAP handler accepts */

  /* state, under mu */
  pthread_mutex_t mu;
  req_t reqs[MAXREQ];
  int nreqs;
  rec_t recs[MAXREC];
  int nrecs;
  int64_t next_seq;
  int counts[MAXK];
  int logged;
  bson_t *docs[MAXDOCS];
  int ndocs;
  int bad_requests;
  int zap_allowed, zap_denied;
  int restarts;

  /* the thread */
  pthread_t th;
  atomic_bool stop;
  void *ctx, *router, *zap;
  char endpoint[64];
} responder_t;

static void *open_router(responder_t *r)
{
  void *s = zmq_socket(r->ctx, ZMQ_ROUTER);
  int zero = 0, one = 1;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  if (r->curve) {
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, r->secret, 41);
  }
  /* a restarted responder binds the same port; the old listener may need a moment */
  for (int i = 0; i < 200; i++) {
    if (zmq_bind(s, r->endpoint[0] ? r->endpoint : "tcp://127.0.0.1:*") == 0) {
      if (!r->endpoint[0]) {
        size_t len = sizeof r->endpoint;
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, r->endpoint, &len);
      }
      return s;
    }
    sleep_ms(5);
  }
  zmq_close(s);
  return NULL;
}

static void send_reply(void *sock, zmq_msg_t *identity, const bson_t *reply)
{
  zmq_msg_t id;
  zmq_msg_init(&id);
  zmq_msg_copy(&id, identity);
  zmq_msg_send(&id, sock, ZMQ_SNDMORE);
  zmq_send(sock, "ZQA1", 4, ZMQ_SNDMORE);
  zmq_send(sock, bson_get_data(reply), reply->len, 0);
}

static void answer_error(responder_t *r, zmq_msg_t *identity, int64_t batch, const char *error)
{
  bson_t reply;
  bson_init(&reply);
  BSON_APPEND_INT64(&reply, "batch", batch);
  BSON_APPEND_BOOL(&reply, "ok", false);
  BSON_APPEND_UTF8(&reply, "error", error);
  send_reply(r->router, identity, &reply);
  bson_destroy(&reply);
}

static void answer_rec(responder_t *r, zmq_msg_t *identity, const rec_t *rec, bool dup,
                       const bson_t *errors)
{
  bson_t reply;
  bson_init(&reply);
  BSON_APPEND_INT64(&reply, "batch", rec->batch);
  BSON_APPEND_BOOL(&reply, "ok", true);
  BSON_APPEND_INT64(&reply, "first", rec->first);
  BSON_APPEND_INT64(&reply, "last", rec->last);
  BSON_APPEND_INT32(&reply, "accepted", rec->accepted);
  BSON_APPEND_INT32(&reply, "rejected", rec->rejected);
  BSON_APPEND_BOOL(&reply, "dup", dup);
  if (errors)
    BSON_APPEND_ARRAY(&reply, "errors", errors);
  send_reply(r->router, identity, &reply);
  bson_destroy(&reply);
}

/* One request: frames[0] is the routing id. Returns true to restart the socket. */
static bool serve(responder_t *r, zmq_msg_t *frames, int nframes)
{
  bson_t hdr;
  bson_iter_t it;
  bson_subtype_t sub;
  uint32_t idlen = 0;
  const uint8_t *cid = NULL;
  int64_t batch = 0;
  int32_t n = -1;
  bool ok = nframes >= 3 && zmq_msg_size(&frames[1]) == 4 &&
            memcmp(zmq_msg_data(&frames[1]), "ZQA1", 4) == 0 &&
            bson_init_static(&hdr, zmq_msg_data(&frames[2]), zmq_msg_size(&frames[2]));
  if (ok && bson_iter_init_find(&it, &hdr, "client") && BSON_ITER_HOLDS_BINARY(&it))
    bson_iter_binary(&it, &sub, &idlen, &cid);
  ok = ok && cid && idlen == 16 && sub == BSON_SUBTYPE_UUID;
  if (ok && bson_iter_init_find(&it, &hdr, "batch") && BSON_ITER_HOLDS_INT64(&it))
    batch = bson_iter_int64(&it);
  if (ok && bson_iter_init_find(&it, &hdr, "n") && BSON_ITER_HOLDS_INT32(&it))
    n = bson_iter_int32(&it);
  ok = ok && batch > 0 && n >= 0 && n == nframes - 3;
  pthread_mutex_lock(&r->mu);
  if (!ok) {
    r->bad_requests++;
    pthread_mutex_unlock(&r->mu);
    answer_error(r, &frames[0], batch, "bad header");
    return false;
  }
  if (r->nreqs < MAXREQ) {
    req_t *q = &r->reqs[r->nreqs];
    memcpy(q->client, cid, 16);
    q->batch = batch;
    q->n = n;
    q->at = mono_ms();
  }
  r->nreqs++;
  if (r->refuse) {
    const char *why = r->refuse;
    pthread_mutex_unlock(&r->mu);
    answer_error(r, &frames[0], batch, why);
    return false;
  }
  if (r->busy > 0) {
    r->busy--;
    pthread_mutex_unlock(&r->mu);
    answer_error(r, &frames[0], batch, "busy");
    return false;
  }
  for (int i = 0; i < r->nrecs; i++)
    if (r->recs[i].batch == batch && memcmp(r->recs[i].client, cid, 16) == 0) {
      rec_t rec = r->recs[i];
      pthread_mutex_unlock(&r->mu);
      answer_rec(r, &frames[0], &rec, true, NULL);
      return false;
    }
  /* log it: valid events in order get consecutive _seq */
  bson_t errors;
  bson_init(&errors);
  rec_t rec = {.batch = batch};
  memcpy(rec.client, cid, 16);
  int listed = 0;
  for (int i = 0; i < n; i++) {
    bson_t ev;
    zmq_msg_t *f = &frames[3 + i];
    if (!bson_init_static(&ev, zmq_msg_data(f), zmq_msg_size(f))) {
      rec.rejected++;
      continue;
    }
    if (bson_has_field(&ev, "bad")) {
      rec.rejected++;
      if (listed < 100) {
        char key[16];
        const char *k;
        bson_uint32_to_string((uint32_t)listed++, &k, key, sizeof key);
        bson_t e;
        bson_append_document_begin(&errors, k, -1, &e);
        BSON_APPEND_INT32(&e, "i", i);
        BSON_APPEND_UTF8(&e, "error", "field 'bad' is bad");
        bson_append_document_end(&errors, &e);
      }
      continue;
    }
    if (!rec.accepted)
      rec.first = r->next_seq;
    rec.last = r->next_seq++;
    rec.accepted++;
    r->logged++;
    if (bson_iter_init_find(&it, &ev, "k") && BSON_ITER_HOLDS_NUMBER(&it)) {
      int64_t k = bson_iter_as_int64(&it);
      if (k >= 0 && k < MAXK)
        r->counts[k]++;
    }
    if (r->ndocs < MAXDOCS)
      r->docs[r->ndocs++] = bson_copy(&ev);
  }
  if (r->nrecs < MAXREC)
    r->recs[r->nrecs++] = rec;
  bool restart = r->restart_at > 0 && r->nreqs == r->restart_at;
  bool drop = restart || r->drop > 0;
  if (!restart && r->drop > 0)
    r->drop--;
  pthread_mutex_unlock(&r->mu);
  if (!drop)
    answer_rec(r, &frames[0], &rec, false, listed ? &errors : NULL);
  bson_destroy(&errors);
  return restart;
}

/* The ZAP handler (RFC 27): accept only r->allow. */
static void serve_zap(responder_t *r)
{
  zmq_msg_t f[8];
  int nf = 0;
  bool more = true;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, r->zap, 0) < 0) {
      zmq_msg_close(&m);
      break;
    }
    more = zmq_msg_more(&m);
    if (nf < 8) {
      zmq_msg_init(&f[nf]);
      zmq_msg_move(&f[nf++], &m);
    }
    zmq_msg_close(&m);
  }
  bool allowed = false;
  if (nf >= 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
      zmq_msg_size(&f[6]) == 32) {
    char z85[41];
    zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
    allowed = strcmp(z85, r->allow) == 0;
  }
  pthread_mutex_lock(&r->mu);
  if (allowed)
    r->zap_allowed++;
  else
    r->zap_denied++;
  pthread_mutex_unlock(&r->mu);
  zmq_send(r->zap, "1.0", 3, ZMQ_SNDMORE);
  if (nf >= 2)
    zmq_send(r->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
  else
    zmq_send(r->zap, "", 0, ZMQ_SNDMORE);
  zmq_send(r->zap, allowed ? "200" : "400", 3, ZMQ_SNDMORE);
  zmq_send(r->zap, allowed ? "OK" : "unknown key", allowed ? 2 : 11, ZMQ_SNDMORE);
  zmq_send(r->zap, "", 0, ZMQ_SNDMORE);
  zmq_send(r->zap, "", 0, 0);
  for (int i = 0; i < nf; i++)
    zmq_msg_close(&f[i]);
}

static void *responder_main(void *arg)
{
  responder_t *r = arg;
  while (!atomic_load(&r->stop)) {
    zmq_pollitem_t items[2] = {{r->router, 0, ZMQ_POLLIN, 0}, {r->zap, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll(items, r->zap ? 2 : 1, 10) <= 0)
      continue;
    if (r->zap && items[1].revents & ZMQ_POLLIN)
      serve_zap(r);
    if (!(items[0].revents & ZMQ_POLLIN))
      continue;
    zmq_msg_t frames[MAXK];
    int nf = 0;
    bool more = true;
    while (more) {
      zmq_msg_init(&frames[nf]);
      if (zmq_msg_recv(&frames[nf], r->router, 0) < 0)
        break;
      more = zmq_msg_more(&frames[nf]);
      if (nf < MAXK - 1)
        nf++;
      else
        zmq_msg_close(&frames[nf]);
    }
    bool restart = serve(r, frames, nf);
    for (int i = 0; i < nf; i++)
      zmq_msg_close(&frames[i]);
    if (restart) { /* a crash after the batch became durable, before the answer */
      zmq_close(r->router);
      sleep_ms(50);
      r->router = open_router(r);
      pthread_mutex_lock(&r->mu);
      r->restarts++;
      pthread_mutex_unlock(&r->mu);
      if (!r->router)
        break;
    }
  }
  return NULL;
}

static responder_t *responder_new(void)
{
  responder_t *r = calloc(1, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  r->next_seq = 1;
  return r;
}

static void responder_start(responder_t *r)
{
  r->ctx = zmq_ctx_new();
  assert_non_null(r->ctx);
  if (r->curve && r->allow[0]) {
    r->zap = zmq_socket(r->ctx, ZMQ_REP);
    assert_int_equal(zmq_bind(r->zap, "inproc://zeromq.zap.01"), 0);
  }
  r->router = open_router(r);
  assert_non_null(r->router);
  atomic_store(&r->stop, false);
  assert_int_equal(pthread_create(&r->th, NULL, responder_main, r), 0);
}

static void responder_free(responder_t *r)
{
  atomic_store(&r->stop, true);
  pthread_join(r->th, NULL);
  if (r->router)
    zmq_close(r->router);
  if (r->zap) {
    int zero = 0;
    zmq_setsockopt(r->zap, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(r->zap);
  }
  zmq_ctx_term(r->ctx);
  for (int i = 0; i < r->ndocs; i++)
    bson_destroy(r->docs[i]);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* Every key 0..n-1 logged exactly once, nothing else. */
static void assert_logged_once(responder_t *r, int n)
{
  pthread_mutex_lock(&r->mu);
  for (int k = 0; k < MAXK; k++)
    if (r->counts[k] != (k < n ? 1 : 0))
      fail_msg("key %d logged %d times", k, r->counts[k]);
  pthread_mutex_unlock(&r->mu);
}

/* }==== */

/* {==== helpers */

static bson_t *event(int k, bool bad)
{
  bson_t *b = bson_new();
  BSON_APPEND_INT64(b, "k", k);
  BSON_APPEND_UTF8(b, "type", "t");
  if (bad)
    BSON_APPEND_BOOL(b, "bad", true);
  return b;
}

static void send_events(zql_client_t *c, int from, int to, int bad_every)
{
  for (int k = from; k < to; k++) {
    bson_t *b = event(k, bad_every && k % bad_every == 0);
    int rc = zql_client_send(c, b);
    bson_destroy(b);
    if (rc != 0)
      fail_msg("send %d: %d %s", k, rc, zql_client_last_error(c));
  }
}

typedef struct {
  uint64_t idx[512];
  char why[512][64];
  int n;
  int bad_doc; /* rejected events whose document does not carry k == index */
  zql_client_ack_t acks[64];
  int nacks;
} seen_t;

static void on_reject(void *arg, uint64_t index, const bson_t *ev, const char *why)
{
  seen_t *s = arg;
  bson_iter_t it;
  if (!bson_iter_init_find(&it, ev, "k") || (uint64_t)bson_iter_as_int64(&it) != index)
    s->bad_doc++;
  if (s->n < 512) {
    s->idx[s->n] = index;
    snprintf(s->why[s->n], sizeof s->why[0], "%s", why);
  }
  s->n++;
}

static void on_ack(void *arg, const zql_client_ack_t *ack)
{
  seen_t *s = arg;
  if (s->nacks < 64)
    s->acks[s->nacks] = *ack;
  s->nacks++;
}

static zql_client_t *connect_to(responder_t *r, zql_client_opts_t *o)
{
  zql_client_t *c = NULL;
  char err[ZQL_CLIENT_ERRLEN];
  int rc = zql_client_connect(r->endpoint, o, &c, err);
  if (rc != 0)
    fail_msg("connect: %d %s", rc, err);
  return c;
}

/* }==== */

static void test_batches_and_ids(void **state)
{
  responder_t *r = responder_new();
  responder_start(r);
  seen_t seen = {0};
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.on_ack = on_ack;
  o.cb_arg = &seen;
  zql_client_t *c = connect_to(r, &o);
  send_events(c, 0, 2500, 0);
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.events, 2500);
  assert_int_equal(st.accepted, 2500);
  assert_int_equal(st.rejected, 0);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.first_seq, 1);
  assert_int_equal(st.last_seq, 2500);
  assert_int_equal(st.batches, 3);
  assert_int_equal(st.sends, 3);
  assert_int_equal(st.resends, 0);
  uint8_t id[16];
  zql_client_id(c, id);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->nreqs, 3);
  assert_int_equal(r->bad_requests, 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r->reqs[i].batch, i + 1);
    assert_int_equal(r->reqs[i].n, i < 2 ? 1000 : 500);
    assert_memory_equal(r->reqs[i].client, id, 16);
  }
  pthread_mutex_unlock(&r->mu);
  assert_int_equal(seen.nacks, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(seen.acks[i].batch, i + 1);
    assert_int_equal(seen.acks[i].first_index, 1000 * i);
    assert_int_equal(seen.acks[i].first_seq, 1000 * i + 1);
    assert_false(seen.acks[i].dup);
  }
  /* a second client has another id */
  zql_client_t *c2 = connect_to(r, NULL);
  uint8_t id2[16];
  zql_client_id(c2, id2);
  assert_memory_not_equal(id, id2, 16);
  /* ping: an empty batch, the next id */
  assert_int_equal(zql_client_ping(c, 2000), 0);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->nreqs, 4);
  assert_int_equal(r->reqs[3].batch, 4);
  assert_int_equal(r->reqs[3].n, 0);
  pthread_mutex_unlock(&r->mu);
  assert_logged_once(r, 2500);
  zql_client_close(c2);
  zql_client_close(c);
  responder_free(r);
}

static void test_rejects(void **state)
{
  responder_t *r = responder_new();
  responder_start(r);
  seen_t seen = {0};
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.on_reject = on_reject;
  o.cb_arg = &seen;
  zql_client_t *c = connect_to(r, &o);
  send_events(c, 0, 10, 3); /* 0, 3, 6, 9 are bad */
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.accepted, 6);
  assert_int_equal(st.rejected, 4);
  assert_int_equal(st.rejected_unlisted, 0);
  assert_int_equal(st.first_seq, 1);
  assert_int_equal(st.last_seq, 6);
  assert_int_equal(seen.n, 4);
  assert_int_equal(seen.bad_doc, 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(seen.idx[i], 3 * i);
    assert_string_equal(seen.why[i], "field 'bad' is bad");
  }
  /* 150 rejected in one batch: the server lists 100 */
  send_events(c, 10, 160, 1);
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.rejected, 154);
  assert_int_equal(st.rejected_unlisted, 50);
  assert_int_equal(seen.n, 104);
  assert_int_equal(seen.idx[4], 10);
  assert_int_equal(seen.idx[103], 109);
  assert_int_equal(seen.bad_doc, 0);
  zql_client_close(c);
  responder_free(r);
}

static void test_lost_answer_resends_same_id(void **state)
{
  responder_t *r = responder_new();
  r->drop = 1;
  responder_start(r);
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.ack_timeout_ms = 150;
  zql_client_t *c = connect_to(r, &o);
  int64_t t0 = mono_ms();
  send_events(c, 0, 10, 0);
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_true(mono_ms() - t0 >= 150);
  assert_int_equal(st.accepted, 10);
  assert_int_equal(st.first_seq, 1);
  assert_int_equal(st.last_seq, 10);
  assert_int_equal(st.sends, 2);
  assert_int_equal(st.resends, 1);
  assert_int_equal(st.dups, 1);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->nreqs, 2);
  assert_int_equal(r->reqs[0].batch, 1);
  assert_int_equal(r->reqs[1].batch, 1); /* the same id */
  assert_memory_equal(r->reqs[0].client, r->reqs[1].client, 16);
  assert_int_equal(r->logged, 10);
  pthread_mutex_unlock(&r->mu);
  assert_logged_once(r, 10);
  zql_client_close(c);
  responder_free(r);
}

static void test_busy_backoff(void **state)
{
  responder_t *r = responder_new();
  r->busy = 2;
  responder_start(r);
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.backoff_min_ms = 40;
  o.backoff_max_ms = 1000;
  zql_client_t *c = connect_to(r, &o);
  send_events(c, 0, 5, 0);
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.accepted, 5);
  assert_int_equal(st.busy, 2);
  assert_int_equal(st.resends, 2);
  assert_int_equal(st.dups, 0);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->nreqs, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(r->reqs[i].batch, 1);
  int64_t gap1 = r->reqs[1].at - r->reqs[0].at, gap2 = r->reqs[2].at - r->reqs[1].at;
  pthread_mutex_unlock(&r->mu);
  /* 40 ms then 80 ms, each -25% at worst (and +25% plus scheduling at best) */
  assert_true(gap1 >= 29);
  assert_true(gap2 >= 59);
  assert_true(gap1 < 1000 && gap2 < 1000);
  assert_logged_once(r, 5);
  zql_client_close(c);
  responder_free(r);
}

static void test_restarted_server(void **state)
{
  responder_t *r = responder_new();
  r->restart_at = 2; /* batch 2 is logged, then the server "crashes" before answering */
  responder_start(r);
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.batch_max_events = 100;
  o.max_inflight_batches = 1;
  o.ack_timeout_ms = 20000; /* the resend must come from noticing the disconnect */
  zql_client_t *c = connect_to(r, &o);
  int64_t t0 = mono_ms();
  send_events(c, 0, 500, 0);
  zql_client_stats_t st;
  int rc = zql_client_flush(c, 4000, &st);
  if (rc != 0)
    fail_msg("flush: %s", zql_client_last_error(c));
  assert_true(mono_ms() - t0 < 4000);
  assert_int_equal(st.accepted, 500);
  assert_int_equal(st.dups, 1);
  assert_int_equal(st.resends, 1);
  assert_int_equal(st.first_seq, 1);
  assert_int_equal(st.last_seq, 500);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->restarts, 1);
  assert_int_equal(r->nreqs, 6);
  assert_int_equal(r->reqs[2].batch, 2); /* the resend, answered from the dedup records */
  pthread_mutex_unlock(&r->mu);
  assert_logged_once(r, 500);
  zql_client_close(c);
  responder_free(r);
}

static void test_curve(void **state)
{
  responder_t *r = responder_new();
  char cpub[41], csec[41], opub[41], osec[41];
  assert_int_equal(zmq_curve_keypair(r->public_key, r->secret), 0);
  assert_int_equal(zmq_curve_keypair(cpub, csec), 0);
  assert_int_equal(zmq_curve_keypair(opub, osec), 0);
  r->curve = true;
  memcpy(r->allow, cpub, 41);
  responder_start(r);

  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.server_public_key = r->public_key;
  o.secret_key = csec; /* the public key is derived */
  zql_client_t *c = connect_to(r, &o);
  send_events(c, 0, 3, 0);
  zql_client_stats_t st;
  int rc = zql_client_flush(c, 3000, &st);
  if (rc != 0)
    fail_msg("flush: %s", zql_client_last_error(c));
  assert_int_equal(st.accepted, 3);
  zql_client_close(c);

  /* a key pair the allow list does not know: the ZAP handler says 400 */
  o.public_key = opub;
  o.secret_key = osec;
  c = connect_to(r, &o);
  send_events(c, 100, 101, 0);
  assert_int_equal(zql_client_flush(c, 300, &st), ZQL_CLIENT_E_TIMEOUT);
  assert_int_equal(st.pending, 1);
  assert_non_null(strstr(zql_client_last_error(c), "refused this client's CURVE key"));
  zql_client_close(c);

  /* the wrong server key: no handshake */
  o.server_public_key = opub;
  o.public_key = cpub;
  o.secret_key = csec;
  c = connect_to(r, &o);
  send_events(c, 200, 201, 0);
  assert_int_equal(zql_client_flush(c, 300, &st), ZQL_CLIENT_E_TIMEOUT);
  assert_non_null(strstr(zql_client_last_error(c), "not acknowledged"));
  zql_client_close(c);

  /* a plain client to a CURVE server */
  c = connect_to(r, NULL);
  send_events(c, 300, 301, 0);
  assert_int_equal(zql_client_flush(c, 300, &st), ZQL_CLIENT_E_TIMEOUT);
  zql_client_close(c);

  pthread_mutex_lock(&r->mu);
  assert_true(r->zap_allowed >= 1);
  assert_true(r->zap_denied >= 1);
  pthread_mutex_unlock(&r->mu);
  assert_logged_once(r, 3); /* nothing from the others */
  responder_free(r);
}

static void test_json(void **state)
{
  responder_t *r = responder_new();
  responder_start(r);
  zql_client_t *c = connect_to(r, NULL);
  assert_int_equal(zql_client_send_json(c, "{\"k\": 0, \"t\": {\"$datetime\": 1325376000.5}}"), 0);
  assert_int_equal(zql_client_send_json(c, "{\n  \"k\": 1,\n  \"d\": {\"$date\": "
                                           "\"2012-01-01T00:00:00Z\"},\n  \"s\": \"a\\nb\"\n}\n"),
                   0);
  assert_int_equal(zql_client_send_json(c, "{\"k\": "), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(zql_client_last_error(c), "invalid JSON"));
  assert_int_equal(zql_client_send_json(c, "[1, 2]"), ZQL_CLIENT_E_INVALID);
  assert_int_equal(zql_client_send_json(c, "   "), ZQL_CLIENT_E_INVALID);
  assert_int_equal(zql_client_send_json(c, "{\"t\": {\"$datetime\": \"x\"}}"),
                   ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(zql_client_last_error(c), "$datetime"));
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.events, 2);
  assert_int_equal(st.accepted, 2);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->ndocs, 2);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, r->docs[0], "t") && BSON_ITER_HOLDS_DATE_TIME(&it));
  assert_int_equal(bson_iter_date_time(&it), INT64_C(1325376000500));
  assert_true(bson_iter_init_find(&it, r->docs[1], "d") && BSON_ITER_HOLDS_DATE_TIME(&it));
  assert_int_equal(bson_iter_date_time(&it), INT64_C(1325376000000));
  assert_true(bson_iter_init_find(&it, r->docs[1], "s"));
  assert_string_equal(bson_iter_utf8(&it, NULL), "a\nb");
  pthread_mutex_unlock(&r->mu);
  zql_client_close(c);
  responder_free(r);
}

static void test_window_and_send_timeout(void **state)
{
  responder_t *r = responder_new();
  r->drop = 1000; /* log, never answer (until told) */
  responder_start(r);
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.batch_max_events = 1;
  o.max_inflight_batches = 2;
  o.send_timeout_ms = 100;
  o.ack_timeout_ms = 200;
  zql_client_t *c = connect_to(r, &o);
  send_events(c, 0, 3, 0); /* two in flight, the third waits in the open batch */
  bson_t *b = event(3, false);
  int64_t t0 = mono_ms();
  assert_int_equal(zql_client_send(c, b), ZQL_CLIENT_E_TIMEOUT);
  int64_t waited = mono_ms() - t0;
  assert_true(waited >= 100 && waited < 1000);
  assert_int_equal(zql_client_ping(c, 50), ZQL_CLIENT_E_TIMEOUT);
  zql_client_stats_t st;
  zql_client_stats(c, &st);
  assert_int_equal(st.events, 3); /* the fourth was not taken */
  assert_int_equal(st.pending, 3);
  pthread_mutex_lock(&r->mu);
  r->drop = 0;
  pthread_mutex_unlock(&r->mu);
  assert_int_equal(zql_client_flush(c, 3000, &st), 0); /* the resends are answered (dup) */
  assert_int_equal(st.accepted, 3);
  assert_true(st.dups >= 2);
  assert_int_equal(zql_client_send(c, b), 0);
  bson_destroy(b);
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.accepted, 4);
  assert_logged_once(r, 4);
  zql_client_close(c);
  responder_free(r);
}

static void test_refused_batch(void **state)
{
  responder_t *r = responder_new();
  r->refuse = "bad header";
  responder_start(r);
  seen_t seen = {0};
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.on_reject = on_reject;
  o.cb_arg = &seen;
  zql_client_t *c = connect_to(r, &o);
  send_events(c, 0, 3, 0);
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), ZQL_CLIENT_E_REFUSED);
  assert_int_equal(st.refused, 3);
  assert_int_equal(st.accepted, 0);
  assert_int_equal(st.pending, 0);
  assert_int_equal(seen.n, 3);
  assert_int_equal(seen.bad_doc, 0);
  assert_string_equal(seen.why[2], "batch refused by the server: bad header");
  assert_non_null(strstr(zql_client_last_error(c), "bad header"));
  assert_int_equal(zql_client_flush(c, 100, &st), 0); /* reported once */
  zql_client_close(c);
  responder_free(r);
}

static void test_batch_bytes_and_age(void **state)
{
  responder_t *r = responder_new();
  responder_start(r);
  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.batch_max_bytes = 200;
  o.batch_max_delay_ms = -1;
  zql_client_t *c = connect_to(r, &o);
  bson_t *small = event(0, false); /* ~30 bytes */
  uint32_t per = 200 / small->len;
  bson_destroy(small);
  send_events(c, 0, 20, 0);
  bson_t *big = bson_new();
  BSON_APPEND_INT64(big, "k", 20);
  char pad[1000];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  BSON_APPEND_UTF8(big, "pad", pad);
  assert_int_equal(zql_client_send(c, big), 0);
  bson_destroy(big);
  send_events(c, 21, 22, 0);
  zql_client_stats_t st;
  assert_int_equal(zql_client_flush(c, 3000, &st), 0);
  assert_int_equal(st.accepted, 22);
  pthread_mutex_lock(&r->mu);
  int total = 0;
  for (int i = 0; i < r->nreqs; i++) {
    assert_true(r->reqs[i].n >= 1 && (uint32_t)r->reqs[i].n <= per);
    total += r->reqs[i].n;
  }
  assert_int_equal(total, 22);
  assert_int_equal(r->reqs[r->nreqs - 2].n, 1); /* the big one alone */
  int before = r->nreqs;
  pthread_mutex_unlock(&r->mu);
  assert_logged_once(r, 22);
  zql_client_close(c);

  /* by age: poll sends an open batch older than batch_max_delay_ms */
  zql_client_opts_init(&o);
  o.batch_max_delay_ms = 30;
  c = connect_to(r, &o);
  send_events(c, 22, 23, 0);
  zql_client_stats(c, &st);
  assert_int_equal(st.pending, 1);
  sleep_ms(40);
  assert_int_equal(zql_client_poll(c, 2000), 0);
  zql_client_stats(c, &st);
  assert_int_equal(st.accepted, 1);
  assert_int_equal(st.pending, 0);
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->nreqs, before + 1);
  pthread_mutex_unlock(&r->mu);
  zql_client_close(c);
  responder_free(r);
}

static void test_no_server(void **state)
{
  zql_client_t *c;
  char err[ZQL_CLIENT_ERRLEN];
  /* port 1 on the loopback: nothing listens there */
  assert_int_equal(zql_client_connect("tcp://127.0.0.1:1", NULL, &c, err), 0);
  send_events(c, 0, 5, 0);
  zql_client_stats_t st;
  int64_t t0 = mono_ms();
  assert_int_equal(zql_client_flush(c, 200, &st), ZQL_CLIENT_E_TIMEOUT);
  int64_t waited = mono_ms() - t0;
  assert_true(waited >= 200 && waited < 1000);
  assert_int_equal(st.pending, 5);
  assert_int_equal(st.sends, 0);
  assert_non_null(strstr(zql_client_last_error(c), "no connection to tcp://127.0.0.1:1"));
  zql_client_close(c);
}

static void test_invalid_arguments(void **state)
{
  zql_client_t *c = (zql_client_t *)&c;
  char err[ZQL_CLIENT_ERRLEN];
  assert_int_equal(zql_client_connect("nope", NULL, &c, err), ZQL_CLIENT_E_INVALID);
  assert_null(c);
  assert_non_null(strstr(err, "cannot connect to 'nope'"));
  assert_int_equal(zql_client_connect("", NULL, &c, NULL), ZQL_CLIENT_E_INVALID);

  zql_client_opts_t o;
  zql_client_opts_init(&o);
  o.server_public_key = "not a key";
  assert_int_equal(zql_client_connect(NULL, &o, &c, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, "server_public_key"));

  char pub[41], sec[41], pub2[41], sec2[41];
  assert_int_equal(zmq_curve_keypair(pub, sec), 0);
  assert_int_equal(zmq_curve_keypair(pub2, sec2), 0);
  zql_client_opts_init(&o);
  o.secret_key = sec;
  assert_int_equal(zql_client_connect(NULL, &o, &c, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, "server's public key"));
  o.server_public_key = pub2;
  o.public_key = pub2; /* not sec's */
  assert_int_equal(zql_client_connect(NULL, &o, &c, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, "does not belong"));

  zql_client_opts_init(&o);
  o.batch_max_events = 0;
  assert_int_equal(zql_client_connect(NULL, &o, &c, err), ZQL_CLIENT_E_INVALID);
  zql_client_opts_init(&o);
  o.backoff_max_ms = 1;
  assert_int_equal(zql_client_connect(NULL, &o, &c, err), ZQL_CLIENT_E_INVALID);

  /* an event over 16 MiB */
  assert_int_equal(zql_client_connect("tcp://127.0.0.1:1", NULL, &c, err), 0);
  size_t n = ZQL_CLIENT_MAX_EVENT;
  uint8_t *blob = calloc(1, n);
  bson_t *b = bson_new();
  BSON_APPEND_BINARY(b, "blob", BSON_SUBTYPE_BINARY, blob, (uint32_t)n);
  free(blob);
  assert_int_equal(zql_client_send(c, b), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(zql_client_last_error(c), "larger than"));
  bson_destroy(b);
  assert_int_equal(zql_client_send(c, NULL), ZQL_CLIENT_E_INVALID);
  zql_client_stats_t st;
  zql_client_stats(c, &st);
  assert_int_equal(st.events, 0);
  zql_client_close(c);
  zql_client_close(NULL);
  assert_string_equal(zql_client_strerror(ZQL_CLIENT_E_TIMEOUT), "timed out");
}

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_keyfile(void **state)
{
  char dir[] = "/tmp/zql-test-client.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128], text[256], pub[41], sec[41], p[41], s[41], err[ZQL_CLIENT_ERRLEN];
  assert_int_equal(zmq_curve_keypair(pub, sec), 0);
  snprintf(path, sizeof path, "%s/key", dir);

  snprintf(text, sizeof text, "# a comment\n\npublic = %s\nsecret = %s\n", pub, sec);
  write_file(path, text);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), 0);
  assert_string_equal(p, pub);
  assert_string_equal(s, sec);

  snprintf(text, sizeof text, "secret=%s\r\n", sec); /* the public key is derived */
  write_file(path, text);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), 0);
  assert_string_equal(p, pub);

  snprintf(text, sizeof text, "%s\n", pub); /* a bare public key */
  write_file(path, text);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), 0);
  assert_string_equal(p, pub);
  assert_string_equal(s, "");

  char pub2[41], sec2[41];
  assert_int_equal(zmq_curve_keypair(pub2, sec2), 0);
  snprintf(text, sizeof text, "public = %s\nsecret = %s\n", pub2, sec);
  write_file(path, text);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, ":1: the public key does not belong"));
  assert_string_equal(p, "");
  assert_string_equal(s, "");

  write_file(path, "public = tooshort\n");
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, ":1: not a Z85 CURVE key"));
  snprintf(text, sizeof text, "private = %s\n", sec);
  write_file(path, text);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, "unknown key 'private'"));
  snprintf(text, sizeof text, "public = %s\npublic = %s\n", pub, pub);
  write_file(path, text);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, ":2: a second public key"));
  write_file(path, "# nothing\n");
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), ZQL_CLIENT_E_INVALID);
  assert_non_null(strstr(err, "no key"));
  unlink(path);
  assert_int_equal(zql_client_read_keyfile(path, p, s, err), ZQL_CLIENT_E_IO);
  rmdir(dir);
}

static void test_out_of_memory(void **state)
{
  /* every allocation of connect failing in turn: NOMEM, nothing leaked (ASan) */
  for (long k = 0;; k++) {
    zql_client_t *c = NULL;
    char err[ZQL_CLIENT_ERRLEN];
    zql_alloc_fail_after(k);
    int rc = zql_client_connect("tcp://127.0.0.1:1", NULL, &c, err);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      assert_true(k > 0);
      zql_client_close(c);
      break;
    }
    assert_int_equal(rc, ZQL_CLIENT_E_NOMEM);
    assert_null(c);
    assert_true(k < 100);
  }
}

int zql_unit_client(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_batches_and_ids),
      ZQL_UNIT_TEST(test_rejects),
      ZQL_UNIT_TEST(test_lost_answer_resends_same_id),
      ZQL_UNIT_TEST(test_busy_backoff),
      ZQL_UNIT_TEST(test_restarted_server),
      ZQL_UNIT_TEST(test_curve),
      ZQL_UNIT_TEST(test_json),
      ZQL_UNIT_TEST(test_window_and_send_timeout),
      ZQL_UNIT_TEST(test_refused_batch),
      ZQL_UNIT_TEST(test_batch_bytes_and_age),
      ZQL_UNIT_TEST(test_no_server),
      ZQL_UNIT_TEST(test_invalid_arguments),
      ZQL_UNIT_TEST(test_keyfile),
      ZQL_UNIT_TEST(test_out_of_memory),
  };
  return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
