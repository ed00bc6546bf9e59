/*
 * test_zqld_ingest.c -- unit tests of zqld's ZeroMQ ingest endpoints and writer thread
 * (runtime/zqld_ingest.c), with real sockets on tcp://127.0.0.1:<ephemeral port> and a
 * real event log in a temporary directory.
 *
 * Covers: BSON and JSON PUSH frames landing in the log with their content (Zarkov's
 * client shapes: no timestamp, event_noval, $datetime) while invalid frames go to the
 * dead-letter file and ingest goes on; the acked protocol (the range only once durable,
 * per-event errors, a resent batch answered dup with the same range and nothing appended
 * twice, also after a restart; pings; bad requests); backpressure (busy replies, a
 * refused submit, PULL reading paused, nothing lost once the writer catches up); drain
 * losing nothing that was sent before it and answering "draining" after; CURVE (an
 * allow-listed client gets in, an unknown key is refused and logs nothing, also on a PUB
 * socket made with zql_ingestd_curve_server); the HTTP submit path.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/base/error.h"
#include "runtime/evlog.h"
#include "runtime/log.h"
#include "runtime/zqld_ingest.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */
#define DL_FILE "deadletter/2023-11-14.ndjson"
#define ANY "tcp://127.0.0.1:*"

static char tmpdir[128];
static int64_t clock_now = T0;

static int64_t test_clock(void *arg)
{
  return *(int64_t *)arg;
}

static int setup(void **state)
{
  snprintf(tmpdir, sizeof tmpdir, "%s/zql-zi.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

#define ZTEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* {==== a gate that can hold the writer thread inside the `appended` callback ====} */

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool closed;
  bool inside;
  uint64_t events; /* appended so far */
  int64_t last_first;
} gate_t;

static gate_t gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0, 0};

static void on_appended(void *arg, int64_t first, const bson_t *const *docs, size_t n)
{
  gate_t *g = arg;
  pthread_mutex_lock(&g->mu);
  g->events += n;
  g->last_first = first;
  g->inside = true;
  pthread_cond_broadcast(&g->cond);
  while (g->closed)
    pthread_cond_wait(&g->cond, &g->mu);
  g->inside = false;
  pthread_mutex_unlock(&g->mu);
}

static void gate_set(bool closed)
{
  pthread_mutex_lock(&gate.mu);
  gate.closed = closed;
  pthread_cond_broadcast(&gate.cond);
  pthread_mutex_unlock(&gate.mu);
}

static void gate_wait_inside(void)
{
  pthread_mutex_lock(&gate.mu);
  while (!gate.inside)
    pthread_cond_wait(&gate.cond, &gate.mu);
  pthread_mutex_unlock(&gate.mu);
}

/* {==== a daemon and its log ====} */

typedef struct daemon {
  zql_evlog_t *log;
  zql_ingestd_t *d;
  zql_ingestd_opts_t o;
} daemon_t;

static void start(daemon_t *dm, uint64_t queue_events, const char *secret, const char *const *allow,
                  size_t nallow)
{
  memset(dm, 0, sizeof *dm);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_opts_t lo;
  zql_evlog_opts_init(&lo);
  lo.clock_ms = test_clock;
  lo.clock_arg = &clock_now;
  assert_int_equal(zql_evlog_open(tmpdir, &lo, &dm->log, &err), 0);
  zql_ingestd_opts_init(&dm->o);
  dm->o.log = dm->log;
  dm->o.fsync = ZQL_EVLOG_SYNC_BATCH;
  dm->o.data_dir = tmpdir;
  dm->o.bson = ANY;
  dm->o.json = ANY;
  dm->o.acked = ANY;
  if (queue_events)
    dm->o.queue_events = queue_events;
  dm->o.curve_secret = secret;
  dm->o.curve_allow = allow;
  dm->o.ncurve_allow = nallow;
  dm->o.appended = on_appended;
  dm->o.appended_arg = &gate;
  dm->o.clock_ms = test_clock;
  dm->o.clock_arg = &clock_now;
  int rc = zql_ingestd_start(&dm->o, &dm->d, &err);
  if (rc)
    print_error("start: %s\n", err.buf);
  assert_int_equal(rc, 0);
  zql_strbuf_release(&err);
  pthread_mutex_lock(&gate.mu);
  gate.events = 0;
  pthread_mutex_unlock(&gate.mu);
}

static void stop(daemon_t *dm)
{
  zql_ingestd_free(dm->d);
  assert_int_equal(zql_evlog_close(dm->log, NULL), 0);
}

static const char *ep(daemon_t *dm, zql_ingestd_source_t s)
{
  const char *e = zql_ingestd_endpoint(dm->d, s);
  assert_non_null(e);
  return e;
}

/* Wait until every received event is accepted or rejected and `total` were received. */
static void wait_processed(daemon_t *dm, zql_ingestd_source_t s, uint64_t total)
{
  for (int i = 0; i < 1000; i++) {
    zql_ingestd_stats_t st;
    zql_ingestd_stats(dm->d, &st);
    if (st.src[s].received >= total && st.src[s].accepted + st.src[s].rejected == st.src[s].received &&
        st.queue_events == 0)
      return;
    sleep_ms(5);
  }
  fail_msg("events were not processed in time");
}

/* The log's documents (copies; free with free_docs). */
static bson_t **read_log(size_t *n)
{
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  zql_evlog_range_t range;
  zql_evlog_range_all(&range);
  zql_evlog_cursor_t *c;
  assert_int_equal(zql_evlog_cursor_open(r, &range, &c, NULL), 0);
  bson_t **docs = NULL;
  *n = 0;
  zql_evlog_view_t v[64];
  int k;
  while ((k = zql_evlog_cursor_next(c, v, 64, NULL)) > 0) {
    docs = realloc(docs, (*n + (size_t)k) * sizeof *docs);
    for (int i = 0; i < k; i++) {
      assert_int_equal(v[i].seq, (int64_t)*n + 1);
      docs[(*n)++] = bson_new_from_data(v[i].doc, v[i].len);
    }
  }
  assert_int_equal(k, 0);
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
  return docs;
}

static void free_docs(bson_t **docs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    bson_destroy(docs[i]);
  free(docs);
}

static const char *str_field(const bson_t *doc, const char *path)
{
  bson_iter_t it, f;
  if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &f) || !BSON_ITER_HOLDS_UTF8(&f))
    return NULL;
  return bson_iter_utf8(&f, NULL);
}

/* The dead-letter lines, parsed. */
static bson_t **read_deadletter(size_t *n)
{
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tmpdir, DL_FILE);
  *n = 0;
  FILE *f = fopen(path, "r");
  if (!f)
    return NULL;
  bson_t **lines = NULL;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)line, len, &e);
    assert_non_null(b);
    lines = realloc(lines, (*n + 1) * sizeof *lines);
    lines[(*n)++] = b;
  }
  free(line);
  fclose(f);
  return lines;
}

/* {==== producers ====} */

static void *client_ctx;

static void *push_socket(const char *endpoint, const char *server_pub, const char *pub, const char *sec)
{
  void *s = zmq_socket(client_ctx, ZMQ_PUSH);
  int linger = 2000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  if (server_pub) {
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
  }
  assert_int_equal(zmq_connect(s, endpoint), 0);
  return s;
}

static void send_bson(void *s, const bson_t *b)
{
  assert_int_equal(zmq_send(s, bson_get_data(b), b->len, 0), (int)b->len);
}

static void send_json(void *s, const char *text)
{
  assert_int_equal(zmq_send(s, text, strlen(text), 0), (int)strlen(text));
}

static bson_t *zarkov_event(const char *type, int i)
{
  bson_t *b = bson_new();
  BSON_APPEND_UTF8(b, "type", type);
  bson_t ctx;
  BSON_APPEND_DOCUMENT_BEGIN(b, "context", &ctx);
  BSON_APPEND_UTF8(&ctx, "user", "admin1");
  BSON_APPEND_INT32(&ctx, "i", i);
  bson_append_document_end(b, &ctx);
  BSON_APPEND_NULL(b, "extra");
  return b;
}

static const uint8_t CLIENT[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void *dealer(const char *endpoint, const char *server_pub, const char *pub, const char *sec)
{
  void *s = zmq_socket(client_ctx, ZMQ_DEALER);
  int linger = 0, tmo = 5000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  if (server_pub) {
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
  }
  assert_int_equal(zmq_connect(s, endpoint), 0);
  return s;
}

/* Send an acked request: header {client, batch, n = nh} and the events. */
static void send_request(void *s, const char *magic, int64_t batch, int32_t nh, bson_t **ev, size_t n)
{
  bson_t h;
  bson_init(&h);
  bson_append_binary(&h, "client", -1, BSON_SUBTYPE_UUID, CLIENT, 16);
  BSON_APPEND_INT64(&h, "batch", batch);
  BSON_APPEND_INT32(&h, "n", nh);
  zmq_send(s, magic, strlen(magic), ZMQ_SNDMORE);
  zmq_send(s, bson_get_data(&h), h.len, n ? ZMQ_SNDMORE : 0);
  for (size_t i = 0; i < n; i++)
    zmq_send(s, bson_get_data(ev[i]), ev[i]->len, i + 1 < n ? ZMQ_SNDMORE : 0);
  bson_destroy(&h);
}

/* Receive a reply; returns its BSON (bson_destroy it). */
static bson_t *recv_reply(void *s)
{
  char magic[8];
  int r = zmq_recv(s, magic, sizeof magic, 0);
  assert_int_equal(r, 4);
  assert_memory_equal(magic, "ZQA1", 4);
  int more;
  size_t ml = sizeof more;
  zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
  assert_true(more);
  zmq_msg_t m;
  zmq_msg_init(&m);
  assert_true(zmq_msg_recv(&m, s, 0) > 0);
  bson_t *b = bson_new_from_data(zmq_msg_data(&m), zmq_msg_size(&m));
  assert_non_null(b);
  zmq_msg_close(&m);
  return b;
}

static int64_t int_field(const bson_t *b, const char *k)
{
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, b, k));
  return bson_iter_as_int64(&it);
}

static bool bool_field(const bson_t *b, const char *k)
{
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, b, k));
  assert_true(BSON_ITER_HOLDS_BOOL(&it));
  return bson_iter_bool(&it);
}

/* {==== tests ====} */

static void test_push_bson_json(void **state)
{
  daemon_t dm;
  start(&dm, 0, NULL, NULL, 0);
  void *pb = push_socket(ep(&dm, ZQL_INGESTD_BSON), NULL, NULL, NULL);
  void *pj = push_socket(ep(&dm, ZQL_INGESTD_JSON), NULL, NULL, NULL);
  /* BSON: Zarkov's event(), event_noval() with its timestamp, garbage, a bad context */
  bson_t *e1 = zarkov_event("login", 1);
  send_bson(pb, e1);
  bson_t *e2 = zarkov_event("commit", 2);
  BSON_APPEND_DATE_TIME(e2, "timestamp", 1300000000000);
  BSON_APPEND_UTF8(e2, "$command", "event_noval");
  send_bson(pb, e2);
  send_json(pb, "{\"type\": \"not bson\"}");
  bson_t *e3 = bson_new();
  BSON_APPEND_UTF8(e3, "type", "x");
  BSON_APPEND_UTF8(e3, "context", "a string");
  send_bson(pb, e3);
  bson_t *e4 = zarkov_event("after-bad", 4);
  send_bson(pb, e4);
  wait_processed(&dm, ZQL_INGESTD_BSON, 5);
  /* JSON: $datetime, a syntax error, then a good one */
  send_json(pj, "{\"type\": \"wiki\", \"timestamp\": {\"$datetime\": 1300000001.5}, \"context\": {\"user\": \"u\"}}");
  send_json(pj, "{\"type\": \"broken\", ");
  send_json(pj, "{\"type\": \"last\"}");
  wait_processed(&dm, ZQL_INGESTD_JSON, 3);

  zql_ingestd_stats_t st;
  zql_ingestd_stats(dm.d, &st);
  assert_int_equal(st.src[ZQL_INGESTD_BSON].accepted, 3);
  assert_int_equal(st.src[ZQL_INGESTD_BSON].rejected, 2);
  assert_int_equal(st.src[ZQL_INGESTD_JSON].accepted, 2);
  assert_int_equal(st.src[ZQL_INGESTD_JSON].rejected, 1);
  assert_int_equal(st.deadletter_lines, 3);
  assert_int_equal(st.last_seq, 5);
  pthread_mutex_lock(&gate.mu);
  assert_int_equal(gate.events, 5);
  pthread_mutex_unlock(&gate.mu);
  zmq_close(pb);
  zmq_close(pj);
  stop(&dm);

  size_t n;
  bson_t **docs = read_log(&n);
  assert_int_equal(n, 5);
  assert_string_equal(str_field(docs[0], "type"), "login");
  assert_string_equal(str_field(docs[0], "context.user"), "admin1");
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, docs[0], "timestamp")); /* stamped by the log */
  assert_int_equal(bson_iter_date_time(&it), T0);
  assert_true(bson_iter_init_find(&it, docs[0], "extra"));
  assert_string_equal(str_field(docs[1], "type"), "commit");
  assert_false(bson_iter_init_find(&it, docs[1], "$command"));
  assert_true(bson_iter_init_find(&it, docs[1], "timestamp"));
  assert_int_equal(bson_iter_date_time(&it), 1300000000000);
  assert_string_equal(str_field(docs[2], "type"), "after-bad");
  assert_string_equal(str_field(docs[3], "type"), "wiki");
  assert_true(bson_iter_init_find(&it, docs[3], "timestamp"));
  assert_int_equal(bson_iter_date_time(&it), 1300000001500);
  assert_string_equal(str_field(docs[4], "type"), "last");
  free_docs(docs, n);

  bson_t **dl = read_deadletter(&n);
  assert_int_equal(n, 3);
  assert_non_null(strstr(str_field(dl[0], "source"), "bson:"));
  assert_non_null(strstr(str_field(dl[0], "reason"), "not a BSON document"));
  assert_non_null(str_field(dl[0], "raw"));
  assert_non_null(str_field(dl[0], "peer"));
  assert_string_equal(str_field(dl[1], "reason"), "field 'context' is a string; it must be a document");
  assert_string_equal(str_field(dl[1], "event.context"), "a string");
  assert_non_null(strstr(str_field(dl[2], "source"), "json:"));
  assert_non_null(strstr(str_field(dl[2], "reason"), "line 1, column"));
  free_docs(dl, n);
  bson_destroy(e1);
  bson_destroy(e2);
  bson_destroy(e3);
  bson_destroy(e4);
}

static void test_acked(void **state)
{
  daemon_t dm;
  start(&dm, 0, NULL, NULL, 0);
  void *s = dealer(ep(&dm, ZQL_INGESTD_ACKED), NULL, NULL, NULL);
  bson_t *ev[3] = {zarkov_event("a", 1), bson_new(), zarkov_event("c", 3)};
  BSON_APPEND_INT32(ev[1], "_id", 7); /* rejected: assigned by the server */
  send_request(s, "ZQA1", 1, 3, ev, 3);
  bson_t *r = recv_reply(s);
  /* answered only once durable */
  assert_true(zql_evlog_durable_seq(dm.log) >= 2);
  assert_true(bool_field(r, "ok"));
  assert_false(bool_field(r, "dup"));
  assert_int_equal(int_field(r, "batch"), 1);
  assert_int_equal(int_field(r, "first"), 1);
  assert_int_equal(int_field(r, "last"), 2);
  assert_int_equal(int_field(r, "accepted"), 2);
  assert_int_equal(int_field(r, "rejected"), 1);
  bson_iter_t it;
  assert_true(bson_iter_init(&it, r) && bson_iter_find_descendant(&it, "errors.0.i", &it));
  assert_int_equal(bson_iter_as_int64(&it), 1);
  assert_true(bson_iter_init(&it, r) && bson_iter_find_descendant(&it, "errors.0.error", &it));
  assert_string_equal(bson_iter_utf8(&it, NULL), "field '_id' is assigned by the server");
  bson_destroy(r);

  /* the same batch again: dup, same range, nothing appended */
  send_request(s, "ZQA1", 1, 3, ev, 3);
  r = recv_reply(s);
  assert_true(bool_field(r, "ok"));
  assert_true(bool_field(r, "dup"));
  assert_int_equal(int_field(r, "first"), 1);
  assert_int_equal(int_field(r, "last"), 2);
  assert_int_equal(int_field(r, "accepted"), 2);
  bson_destroy(r);
  assert_int_equal(zql_evlog_last_seq(dm.log), 2);

  /* the next batch, twice in a row (a resend while the first is queued) */
  send_request(s, "ZQA1", 2, 1, &ev[2], 1);
  send_request(s, "ZQA1", 2, 1, &ev[2], 1);
  r = recv_reply(s);
  assert_int_equal(int_field(r, "first"), 3);
  bson_destroy(r);
  r = recv_reply(s);
  assert_int_equal(int_field(r, "first"), 3);
  assert_int_equal(int_field(r, "last"), 3);
  assert_true(bool_field(r, "dup"));
  bson_destroy(r);
  assert_int_equal(zql_evlog_last_seq(dm.log), 3);

  /* ping */
  send_request(s, "ZQA1", 3, 0, NULL, 0);
  r = recv_reply(s);
  assert_true(bool_field(r, "ok"));
  assert_int_equal(int_field(r, "first"), 0);
  assert_int_equal(int_field(r, "last"), 0);
  bson_destroy(r);
  /* bad requests */
  send_request(s, "ZQA1", 4, 2, ev, 1);
  r = recv_reply(s);
  assert_false(bool_field(r, "ok"));
  assert_string_equal(str_field(r, "error"), "bad request: header says n = 2 but 1 event frames follow");
  assert_int_equal(int_field(r, "batch"), 4);
  bson_destroy(r);
  send_request(s, "ZQB9", 4, 1, ev, 1);
  r = recv_reply(s);
  assert_false(bool_field(r, "ok"));
  assert_non_null(strstr(str_field(r, "error"), "'ZQA1'"));
  bson_destroy(r);
  send_request(s, "ZQA1", -5, 1, ev, 1);
  r = recv_reply(s);
  assert_false(bool_field(r, "ok"));
  assert_non_null(strstr(str_field(r, "error"), "'batch'"));
  bson_destroy(r);
  zql_ingestd_stats_t st;
  zql_ingestd_stats(dm.d, &st);
  assert_int_equal(st.bad_requests, 3);
  assert_int_equal(st.batches_dup, 2);
  assert_int_equal(st.src[ZQL_INGESTD_ACKED].accepted, 3);
  zmq_close(s);
  stop(&dm);

  /* after a restart the journal still knows batch 1 */
  start(&dm, 0, NULL, NULL, 0);
  s = dealer(ep(&dm, ZQL_INGESTD_ACKED), NULL, NULL, NULL);
  send_request(s, "ZQA1", 1, 3, ev, 3);
  r = recv_reply(s);
  assert_true(bool_field(r, "dup"));
  assert_int_equal(int_field(r, "first"), 1);
  assert_int_equal(int_field(r, "last"), 2);
  assert_int_equal(int_field(r, "rejected"), 1);
  bson_destroy(r);
  send_request(s, "ZQA1", 5, 1, ev, 1);
  r = recv_reply(s);
  assert_false(bool_field(r, "dup"));
  assert_int_equal(int_field(r, "first"), 4);
  bson_destroy(r);
  zmq_close(s);
  stop(&dm);
  size_t n;
  bson_t **docs = read_log(&n);
  assert_int_equal(n, 4);
  assert_string_equal(str_field(docs[0], "type"), "a");
  assert_string_equal(str_field(docs[1], "type"), "c");
  assert_string_equal(str_field(docs[2], "type"), "c");
  assert_string_equal(str_field(docs[3], "type"), "a");
  free_docs(docs, n);
  for (int i = 0; i < 3; i++)
    bson_destroy(ev[i]);
}

static void test_busy(void **state)
{
  daemon_t dm;
  start(&dm, 4, NULL, NULL, 0);
  gate_set(true);
  void *s = dealer(ep(&dm, ZQL_INGESTD_ACKED), NULL, NULL, NULL);
  bson_t *ev[3] = {zarkov_event("a", 1), zarkov_event("b", 2), zarkov_event("c", 3)};
  send_request(s, "ZQA1", 1, 3, ev, 3);
  gate_wait_inside(); /* the writer holds batch 1 (3 of the 4 places) */
  send_request(s, "ZQA1", 2, 3, ev, 3);
  bson_t *r = recv_reply(s);
  assert_int_equal(int_field(r, "batch"), 2);
  assert_false(bool_field(r, "ok"));
  assert_string_equal(str_field(r, "error"), "busy");
  bson_destroy(r);
  /* HTTP: refused after its timeout */
  zql_ingestd_event_t hev[2] = {{ev[0], 0, NULL, NULL, 0, NULL}, {ev[1], 0, NULL, NULL, 0, NULL}};
  zql_ingestd_result_t res;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_ingestd_submit(dm.d, hev, 2, NULL, &res, 50, &err), ZQL_E_BUSY);
  zql_ingestd_result_release(&res);
  zql_strbuf_release(&err);
  /* PULL: one frame fits; the socket thread stops reading after it */
  void *pb = push_socket(ep(&dm, ZQL_INGESTD_BSON), NULL, NULL, NULL);
  for (int i = 0; i < 10; i++) {
    bson_t *e = zarkov_event("pushed", i);
    send_bson(pb, e);
    bson_destroy(e);
  }
  sleep_ms(200);
  zql_ingestd_stats_t st;
  zql_ingestd_stats(dm.d, &st);
  assert_int_equal(st.src[ZQL_INGESTD_BSON].received, 1);
  assert_int_equal(st.queue_events, 4);
  assert_int_equal(st.busy, 2);
  /* the writer catches up: batch 1 is answered, the frames come in */
  gate_set(false);
  r = recv_reply(s);
  assert_int_equal(int_field(r, "batch"), 1);
  assert_true(bool_field(r, "ok"));
  assert_int_equal(int_field(r, "first"), 1);
  bson_destroy(r);
  wait_processed(&dm, ZQL_INGESTD_BSON, 10);
  zql_ingestd_stats(dm.d, &st);
  assert_int_equal(st.src[ZQL_INGESTD_BSON].accepted, 10);
  assert_int_equal(st.last_seq, 13);
  zmq_close(pb);
  zmq_close(s);
  stop(&dm);
  for (int i = 0; i < 3; i++)
    bson_destroy(ev[i]);
}

typedef struct drain_arg {
  zql_ingestd_t *d;
  int rc;
} drain_arg_t;

static void *drain_thread(void *arg)
{
  drain_arg_t *a = arg;
  a->rc = zql_ingestd_drain(a->d, 10000, NULL);
  return NULL;
}

static void test_drain(void **state)
{
  daemon_t dm;
  start(&dm, 500, NULL, NULL, 0);
  gate_set(true);
  void *pb = push_socket(ep(&dm, ZQL_INGESTD_BSON), NULL, NULL, NULL);
  enum { N = 3000 };
  for (int i = 0; i < N; i++) {
    bson_t *e = zarkov_event("d", i);
    send_bson(pb, e);
    bson_destroy(e);
  }
  gate_wait_inside(); /* the writer is stuck; the queue fills, the rest waits in ZeroMQ */
  sleep_ms(300);
  zql_ingestd_stats_t st;
  zql_ingestd_stats(dm.d, &st);
  assert_true(st.src[ZQL_INGESTD_BSON].received < N);
  drain_arg_t a = {dm.d, -1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, drain_thread, &a), 0);
  sleep_ms(50);
  gate_set(false);
  pthread_join(t, NULL);
  assert_int_equal(a.rc, 0);
  zql_ingestd_stats(dm.d, &st);
  assert_true(st.draining);
  /* everything received was logged and synced; the drain took the frames ZeroMQ had
   * buffered (all of them here, unless a slow build had not moved them off the wire) */
  uint64_t got = st.src[ZQL_INGESTD_BSON].received;
  assert_true(got > 500);
  if (!getenv("ZQL_TEST_SLOW"))
    assert_int_equal(got, N);
  assert_int_equal(st.src[ZQL_INGESTD_BSON].accepted, got);
  assert_int_equal(st.queue_events, 0);
  assert_int_equal(st.durable_seq, (int64_t)got);
  /* after the drain: acked requests are answered "draining", submits refused */
  void *s = dealer(ep(&dm, ZQL_INGESTD_ACKED), NULL, NULL, NULL);
  bson_t *e = zarkov_event("late", 0);
  send_request(s, "ZQA1", 1, 1, &e, 1);
  bson_t *r = recv_reply(s);
  assert_false(bool_field(r, "ok"));
  assert_string_equal(str_field(r, "error"), "draining");
  bson_destroy(r);
  zql_ingestd_event_t hev = {e, 0, NULL, NULL, 0, NULL};
  zql_ingestd_result_t res;
  assert_int_equal(zql_ingestd_submit(dm.d, &hev, 1, NULL, &res, 0, NULL), ZQL_E_BUSY);
  bson_destroy(e);
  zmq_close(s);
  zmq_close(pb);
  stop(&dm);
  size_t n;
  bson_t **docs = read_log(&n);
  assert_int_equal(n, got);
  for (size_t i = 0; i < n; i += 499) {
    bson_iter_t it;
    assert_true(bson_iter_init(&it, docs[i]) && bson_iter_find_descendant(&it, "context.i", &it));
    assert_int_equal(bson_iter_int32(&it), (int32_t)i);
  }
  free_docs(docs, n);
}

static void test_curve(void **state)
{
  char spub[41], ssec[41], apub[41], asec[41], bpub[41], bsec[41];
  assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
  assert_int_equal(zmq_curve_keypair(apub, asec), 0);
  assert_int_equal(zmq_curve_keypair(bpub, bsec), 0);
  const char *allow[] = {apub};
  daemon_t dm;
  start(&dm, 0, ssec, allow, 1);
  /* an unknown key: refused, nothing logged */
  void *bad = push_socket(ep(&dm, ZQL_INGESTD_BSON), spub, bpub, bsec);
  bson_t *e = zarkov_event("intruder", 0);
  send_bson(bad, e);
  bson_destroy(e);
  zql_ingestd_stats_t st;
  for (int i = 0; i < 400; i++) {
    zql_ingestd_stats(dm.d, &st);
    if (st.curve_denied > 0)
      break;
    sleep_ms(5);
  }
  assert_true(st.curve_denied > 0);
  /* the allow-listed client */
  void *good = push_socket(ep(&dm, ZQL_INGESTD_BSON), spub, apub, asec);
  e = zarkov_event("friend", 1);
  send_bson(good, e);
  wait_processed(&dm, ZQL_INGESTD_BSON, 1);
  void *s = dealer(ep(&dm, ZQL_INGESTD_ACKED), spub, apub, asec);
  send_request(s, "ZQA1", 1, 1, &e, 1);
  bson_t *r = recv_reply(s);
  assert_true(bool_field(r, "ok"));
  assert_int_equal(int_field(r, "first"), 2);
  bson_destroy(r);
  bson_destroy(e);
  /* a PUB socket of the lead's, made a CURVE server through the ingestd */
  void *pub = zmq_socket(zql_ingestd_zmq_context(dm.d), ZMQ_PUB);
  assert_int_equal(zql_ingestd_curve_server(dm.d, pub, NULL), 0);
  assert_int_equal(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
  char pubep[128];
  size_t pl = sizeof pubep;
  zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, pubep, &pl);
  uint64_t denied = st.curve_denied;
  void *sub = zmq_socket(client_ctx, ZMQ_SUB);
  zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, spub, 40);
  zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, bpub, 40);
  zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, bsec, 40);
  zmq_connect(sub, pubep);
  for (int i = 0; i < 400; i++) {
    zql_ingestd_stats(dm.d, &st);
    if (st.curve_denied > denied)
      break;
    sleep_ms(5);
  }
  assert_true(st.curve_denied > denied);
  int zero = 0;
  zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero);
  zmq_close(sub);
  zmq_close(pub);
  sleep_ms(100);
  zql_ingestd_stats(dm.d, &st);
  assert_int_equal(st.src[ZQL_INGESTD_BSON].received, 1);
  assert_int_equal(st.last_seq, 2);
  zmq_setsockopt(bad, ZMQ_LINGER, &zero, sizeof zero);
  zmq_close(bad);
  zmq_close(good);
  zmq_close(s);
  stop(&dm);
  size_t n;
  bson_t **docs = read_log(&n);
  assert_int_equal(n, 2);
  assert_string_equal(str_field(docs[0], "type"), "friend");
  free_docs(docs, n);
}

static void test_http_submit(void **state)
{
  daemon_t dm;
  start(&dm, 0, NULL, NULL, 0);
  bson_t *ok1 = zarkov_event("h1", 1), *bad = zarkov_event("h2", 2), *ok2 = zarkov_event("h3", 3);
  BSON_APPEND_INT32(bad, "_seq", 9);
  zql_ingestd_event_t ev[4] = {
      {ok1, 0, NULL, NULL, 0, NULL},
      {NULL, ZQL_INGEST_MALFORMED, "line 2, column 3: expected a JSON object", "[1,2]", 5, NULL},
      {bad, 0, NULL, NULL, 0, NULL},
      {ok2, 0, NULL, NULL, 0, NULL},
  };
  zql_ingestd_result_t res;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_ingestd_submit(dm.d, ev, 4, "10.1.2.3", &res, 1000, &err), 0);
  assert_int_equal(res.accepted, 2);
  assert_int_equal(res.rejected, 2);
  assert_int_equal(res.first, 1);
  assert_int_equal(res.last, 2);
  assert_int_equal(res.nerrors, 2);
  assert_int_equal(res.errors[0].index, 1);
  assert_int_equal(res.errors[1].index, 2);
  assert_string_equal(res.errors[1].why, "field '_seq' is assigned by the server");
  zql_ingestd_result_release(&res);
  zql_strbuf_release(&err);
  zql_ingestd_stats_t st;
  zql_ingestd_stats(dm.d, &st);
  assert_int_equal(st.src[ZQL_INGESTD_HTTP].received, 4);
  assert_int_equal(st.src[ZQL_INGESTD_HTTP].accepted, 2);
  stop(&dm);
  size_t n;
  bson_t **dl = read_deadletter(&n);
  assert_int_equal(n, 2);
  assert_string_equal(str_field(dl[0], "source"), "http");
  assert_string_equal(str_field(dl[0], "peer"), "10.1.2.3");
  assert_string_equal(str_field(dl[0], "raw"), "WzEsMl0=");
  assert_string_equal(str_field(dl[1], "event.type"), "h2");
  free_docs(dl, n);
  bson_t **docs = read_log(&n);
  assert_int_equal(n, 2);
  assert_string_equal(str_field(docs[1], "type"), "h3");
  free_docs(docs, n);
  bson_destroy(ok1);
  bson_destroy(bad);
  bson_destroy(ok2);
}

static int group_setup(void **state)
{
  zql_log_init("zqld-test", ZQL_LOG_ERROR);
  client_ctx = zmq_ctx_new();
  return client_ctx ? 0 : -1;
}

static int group_teardown(void **state)
{
  zmq_ctx_term(client_ctx);
  return 0;
}

int zql_unit_zqld_ingest(void); /* tests/unit/unit.h once registered there */

int zql_unit_zqld_ingest(void)
{
  const struct CMUnitTest tests[] = {
      ZTEST(test_push_bson_json), ZTEST(test_acked), ZTEST(test_busy),
      ZTEST(test_drain),          ZTEST(test_curve), ZTEST(test_http_submit),
  };
  return cmocka_run_group_tests_name("zqld_ingest", tests, group_setup, group_teardown);
}
