/*
 * bench_ingest.c -- zqld ingest throughput over ZeroMQ (issue 6, "Performance"): events
 * PUSHed into runtime/zqld_ingest.c (BSON frames, batch fsync policy) and sent over the
 * acked protocol (batches of 1000), against a raw PUSH/PULL loop with the same frames in
 * the same run. Figures are printed, never asserted (the targets: PUSH into zqld
 * >= 50% of the raw loop and >= 1M events/s on a 2-core machine).
 *
 *   bench/bench_ingest [--events N] [--acked-window W] [--repeat R] [--dir DIR] [--keep]
 *                      [--quick]
 *
 * The frames: N (default 1,000,000) copies of one Zarkov-shaped event (`{type, context:
 * {user, neighborhood, project, tool, app}, extra: null}`, no timestamp: the log stamps
 * it; 131 bytes), sent by one producer thread over tcp://127.0.0.1 with an ephemeral
 * port. Rows:
 *   raw     PULL socket whose receiver only counts frames (zmq_msg_recv), the ceiling
 *           of one ZeroMQ connection on this machine;
 *   push    zqld's PULL endpoint: frames validated, appended to a fresh event log in DIR
 *           (batch policy, 10 ms), timed until the last event is appended;
 *   acked   zqld's ROUTER endpoint: one DEALER with up to W (default 16) batches of 1000
 *           in flight, timed until the last reply (every reply waits for fdatasync).
 * Each row runs R times (default 3, interleaved) and keeps its best round. Ratio: the
 * row's events/s over the raw row's.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"
#include "runtime/log.h"
#include "runtime/zqld_ingest.h"

typedef struct cfg {
  uint64_t events;
  int window;
  int repeat;
  const char *dir;
  bool keep;
} cfg_t;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) ZQL_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("bench_ingest: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static bson_t *event(void)
{
  bson_t *b = bson_new();
  BSON_APPEND_UTF8(b, "type", "login");
  bson_t c;
  BSON_APPEND_DOCUMENT_BEGIN(b, "context", &c);
  BSON_APPEND_UTF8(&c, "user", "admin1");
  BSON_APPEND_UTF8(&c, "neighborhood", "projects");
  BSON_APPEND_UTF8(&c, "project", "test");
  BSON_APPEND_UTF8(&c, "tool", "wiki");
  BSON_APPEND_UTF8(&c, "app", "home");
  bson_append_document_end(b, &c);
  BSON_APPEND_NULL(b, "extra");
  return b;
}

/* {==== producer ====} */

typedef struct producer {
  void *ctx;
  const char *endpoint;
  const bson_t *ev;
  uint64_t n;
} producer_t;

static void *produce(void *arg)
{
  producer_t *p = arg;
  void *s = zmq_socket(p->ctx, ZMQ_PUSH);
  int hwm = 10000, linger = -1;
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_connect(s, p->endpoint) < 0)
    die("connect %s: %s", p->endpoint, zmq_strerror(zmq_errno()));
  const uint8_t *data = bson_get_data(p->ev);
  for (uint64_t i = 0; i < p->n; i++)
    zmq_send(s, data, p->ev->len, 0);
  zmq_close(s);
  return NULL;
}

/* {==== rows ====} */

static double run_raw(void *ctx, const bson_t *ev, uint64_t n)
{
  void *pull = zmq_socket(ctx, ZMQ_PULL);
  int hwm = 10000;
  zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (zmq_bind(pull, "tcp://127.0.0.1:*") < 0)
    die("bind: %s", zmq_strerror(zmq_errno()));
  char ep[128];
  size_t len = sizeof ep;
  zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &len);
  producer_t p = {ctx, ep, ev, n};
  pthread_t t;
  double t0 = now_s();
  pthread_create(&t, NULL, produce, &p);
  zmq_msg_t m;
  zmq_msg_init(&m);
  uint64_t got = 0, bytes = 0;
  while (got < n) {
    if (zmq_msg_recv(&m, pull, 0) >= 0) {
      got++;
      bytes += zmq_msg_size(&m);
    }
  }
  double secs = now_s() - t0;
  zmq_msg_close(&m);
  pthread_join(t, NULL);
  zmq_close(pull);
  if (bytes != n * ev->len)
    die("raw: %" PRIu64 " bytes received", bytes);
  return secs;
}

typedef struct daemon {
  char dir[512];
  zql_evlog_t *log;
  zql_ingestd_t *d;
} daemon_t;

static void start(daemon_t *dm, const cfg_t *c, bool acked)
{
  snprintf(dm->dir, sizeof dm->dir, "%s/bench-ingest.XXXXXX", c->dir);
  if (!mkdtemp(dm->dir))
    die("mkdtemp %s: %s", dm->dir, strerror(errno));
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_evlog_open(dm->dir, NULL, &dm->log, &err) < 0)
    die("%s", err.buf);
  zql_ingestd_opts_t o;
  zql_ingestd_opts_init(&o);
  o.log = dm->log;
  o.fsync = ZQL_EVLOG_SYNC_BATCH;
  o.data_dir = dm->dir;
  if (acked)
    o.acked = "tcp://127.0.0.1:*";
  else
    o.bson = "tcp://127.0.0.1:*";
  if (zql_ingestd_start(&o, &dm->d, &err) < 0)
    die("%s", err.buf);
  zql_strbuf_release(&err);
}

static void stop(daemon_t *dm, const cfg_t *c)
{
  zql_ingestd_free(dm->d);
  zql_evlog_close(dm->log, NULL);
  if (!c->keep) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dm->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "bench_ingest: cannot remove %s\n", dm->dir);
  }
}

static double run_push(void *ctx, const bson_t *ev, const cfg_t *c)
{
  daemon_t dm;
  start(&dm, c, false);
  producer_t p = {ctx, zql_ingestd_endpoint(dm.d, ZQL_INGESTD_BSON), ev, c->events};
  pthread_t t;
  double t0 = now_s();
  pthread_create(&t, NULL, produce, &p);
  zql_ingestd_stats_t st;
  for (;;) {
    zql_ingestd_stats(dm.d, &st);
    if (st.last_seq >= (int64_t)c->events)
      break;
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  double secs = now_s() - t0;
  pthread_join(t, NULL);
  if (st.last_seq != (int64_t)c->events)
    die("push: the log has %" PRId64 " events", st.last_seq);
  stop(&dm, c);
  return secs;
}

static double run_acked(void *ctx, const bson_t *ev, const cfg_t *c)
{
  enum { BATCH = 1000 };
  daemon_t dm;
  start(&dm, c, true);
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_connect(s, zql_ingestd_endpoint(dm.d, ZQL_INGESTD_ACKED));
  uint8_t client[16];
  for (int i = 0; i < 16; i++)
    client[i] = (uint8_t)(i * 37 + 1);
  uint64_t nbatches = (c->events + BATCH - 1) / BATCH, sent = 0, done = 0, accepted = 0;
  double t0 = now_s();
  while (done < nbatches) {
    while (sent < nbatches && sent - done < (uint64_t)c->window) {
      uint64_t k = sent + 1 < nbatches ? BATCH : c->events - sent * BATCH;
      bson_t h;
      bson_init(&h);
      bson_append_binary(&h, "client", -1, BSON_SUBTYPE_UUID, client, 16);
      BSON_APPEND_INT64(&h, "batch", (int64_t)sent + 1);
      BSON_APPEND_INT32(&h, "n", (int32_t)k);
      zmq_send(s, "ZQA1", 4, ZMQ_SNDMORE);
      zmq_send(s, bson_get_data(&h), h.len, ZMQ_SNDMORE);
      bson_destroy(&h);
      for (uint64_t i = 0; i < k; i++)
        zmq_send(s, bson_get_data(ev), ev->len, i + 1 < k ? ZMQ_SNDMORE : 0);
      sent++;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_recv(&m, s, 0); /* ZQA1 */
    zmq_msg_recv(&m, s, 0);
    bson_t r;
    bson_iter_t it;
    if (!bson_init_static(&r, zmq_msg_data(&m), zmq_msg_size(&m)) ||
        !bson_iter_init_find(&it, &r, "accepted"))
      die("acked: a reply without 'accepted'");
    accepted += (uint64_t)bson_iter_as_int64(&it);
    zmq_msg_close(&m);
    done++;
  }
  double secs = now_s() - t0;
  if (accepted != c->events)
    die("acked: %" PRIu64 " events accepted", accepted);
  zmq_close(s);
  stop(&dm, c);
  return secs;
}

int main(int argc, char **argv)
{
  cfg_t c = {1000000, 16, 3, ".", false};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--events") == 0 && i + 1 < argc)
      c.events = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--acked-window") == 0 && i + 1 < argc)
      c.window = atoi(argv[++i]);
    else if (strcmp(a, "--repeat") == 0 && i + 1 < argc)
      c.repeat = atoi(argv[++i]);
    else if (strcmp(a, "--dir") == 0 && i + 1 < argc)
      c.dir = argv[++i];
    else if (strcmp(a, "--keep") == 0)
      c.keep = true;
    else if (strcmp(a, "--quick") == 0)
      c.events = 50000, c.repeat = 1;
    else {
      fprintf(stderr, "usage: bench_ingest [--events N] [--acked-window W] [--repeat R] "
                      "[--dir DIR] [--keep] [--quick]\n");
      return 2;
    }
  }
  if (c.events == 0 || c.window < 1 || c.repeat < 1)
    die("--events, --acked-window and --repeat must be positive");
  zql_log_init("bench_ingest", ZQL_LOG_ERROR);
  void *ctx = zmq_ctx_new();
  bson_t *ev = event();
  double best[3] = {0, 0, 0};
  for (int r = 0; r < c.repeat; r++) {
    double t[3] = {run_raw(ctx, ev, c.events), run_push(ctx, ev, &c), run_acked(ctx, ev, &c)};
    for (int k = 0; k < 3; k++)
      if (best[k] == 0 || t[k] < best[k])
        best[k] = t[k];
  }
  static const char *const what[] = {"raw PUSH/PULL loop (receiver counts)",
                                     "zqld PUSH :bson (batch fsync)",
                                     "zqld acked (batches of 1000, fsync per reply)"};
  printf("ingest: %" PRIu64 " events of %u bytes, best of %d\n", c.events, ev->len, c.repeat);
  printf("%-48s %9s %12s %8s\n", "row", "seconds", "events/s", "ratio");
  for (int k = 0; k < 3; k++) {
    double eps = (double)c.events / best[k];
    printf("%-48s %9.3f %12.0f %7.1f%%\n", what[k], best[k], eps, 100.0 * best[0] / best[k]);
  }
  bson_destroy(ev);
  zmq_ctx_term(ctx);
  return 0;
}
