#include "runtime/base/zql_common.h"
/*
 * incr.c -- incremental aggregates over the results store: definitions, runs (incremental,
 * full, rebuild), backfill, late events, retention (runtime services; contract in
 * runtime/incr.h, design/ZQL.md R11-R16 and R19, docs/incremental.md).
 *
 * Pipeline position: the top of the pipeline for stored aggregates. A run reads the
 * catalog (the compiled plan), takes the range (lo, hi] of new events from the event log,
 * runs the executor with keep_states, and commits the rows into the store:
 *
 *   reduce   merge each row's partial states into the stored document's states
 *            (exec/refinal.c) and finalize again -- exact by R11
 *   merge    overwrite the documents of the keys the new events touched, keep the others
 *   upsert   recompute (over all events) exactly the documents the new events touched
 *   replace  recompute everything into a shadow collection and swap it in (also `full`
 *            runs of plans whose outputs cannot be merged, R14, and rebuilds, R15)
 *
 * Where zql differs from Zarkov (research/zarkov.md section 3): the watermark moves in the
 * same transaction as the outputs, after them, never before the work; every document write
 * is conditional on `_hw < hi`; runs of one aggregate hold a lock.
 */
#include "runtime/incr.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "exec/pool.h"
#include "exec/zql_exec.h"
#include "planner/zql_plan.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/tz.h"
#include "runtime/base/clock.h"
#include "runtime/catalog.h"
#include "runtime/evlog.h"
#include "runtime/evlog_input.h"
#include "runtime/outdoc.h"
#include "runtime/store_input.h"

/* ==== small helpers ==== */

static double mono(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The crash-test hook (incr.h): die here, as a power cut or kill -9 would. */
static void crash_point(const char *name)
{
  const char *want = getenv("ZQL_TEST_CRASH");
  if (want && strcmp(want, name) == 0)
    raise(SIGKILL);
}

void zql_incr_opts_init(zql_incr_opts_t *o)
{
  memset(o, 0, sizeof *o);
}

static size_t run_key(uint8_t *buf, const char *name, int64_t run)
{
  size_t n = strlen(name);
  memcpy(buf, name, n);
  buf[n++] = 0;
  for (int i = 7; i >= 0; i--)
    buf[n++] = (uint8_t)((uint64_t)run >> (8 * i));
  return n;
}

static const char *errors_coll(char *buf, size_t size, const char *name)
{
  snprintf(buf, size, "zagg.%s._errors", name);
  return buf;
}

static int64_t doc_int(const bson_t *d, const char *key, int64_t dflt)
{
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, key) &&
      (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it)))
    return bson_iter_as_int64(&it);
  if (bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_DATE_TIME(&it))
    return bson_iter_date_time(&it);
  return dflt;
}

static const char *doc_str(const bson_t *d, const char *key)
{
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_UTF8(&it))
    return bson_iter_utf8(&it, NULL);
  return NULL;
}

/* A list of ids (u32 length, then the bytes) collected by a scan, to delete afterwards. */
static void ids_add(zql_strbuf_t *ids, const void *id, size_t idlen)
{
  uint32_t l = (uint32_t)idlen;
  zql_strbuf_add(ids, &l, sizeof l);
  zql_strbuf_add(ids, id, idlen);
}

/* Delete every id of the list from coll (absent ones are fine). */
static int ids_delete(zql_store_txn_t *txn, const char *coll, const zql_strbuf_t *ids,
                      zql_strbuf_t *err)
{
  if (ids->oom)
    return ZQL_E_NOMEM;
  int rc = 0;
  for (size_t off = 0; !rc && off < ids->len;) {
    uint32_t l;
    memcpy(&l, ids->buf + off, sizeof l);
    off += sizeof l;
    rc = zql_store_del(txn, coll, ids->buf + off, l, err);
    rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
    off += l;
  }
  return rc;
}

/* ==== the aggregate being run ==== */

typedef struct wm {
  int64_t seq;       /* last committed _seq */
  int64_t et;        /* max event time seen */
  bool has_et;
  int64_t run;       /* last run number */
  int64_t swept;     /* last retention sweep (ms) */
} wm_t;

typedef struct runrec {
  int64_t run;
  char kind[16];
  int64_t lo, hi;
  char status[16];
  int64_t started;
  int64_t from, to, done; /* backfill: [from, to), buckets before `done` remain */
} runrec_t;

typedef struct agg {
  zql_store_t *s;
  const char *data_dir;
  const char *name;
  int lockfd;
  zql_plan_t *plan;
  zql_xplan_t *x;
  zql_bucket_t *bk;        /* per table with a bucket key: its bucket spec */
  bool rebuild_pending;
  wm_t wm;
  runrec_t last;           /* the last run record (run 0: none) */
  zql_evlog_reader_t *reader;
  char *src_coll;          /* `from agg X`: X's output collection */
  int64_t src_seq;         /* and X's watermark (this aggregate is current up to it) */
  const zql_incr_opts_t *o;
  zql_incr_report_t *rep;
  zql_strbuf_t *err;
  int64_t now;
} agg_t;

/* Threads of a run: --threads, else one per online processor (sysconf reads a file in
 * /sys each time: asked once per process). */
static unsigned opt_threads(const zql_incr_opts_t *o)
{
  static atomic_long online;
  long n = o->threads;
  if (!n && !(n = atomic_load(&online))) {
    n = sysconf(_SC_NPROCESSORS_ONLN);
    atomic_store(&online, n);
  }
  return n < 1 ? 1u : (unsigned)n;
}

static unsigned agg_threads(const agg_t *a)
{
  return opt_threads(a->o);
}

static int lock_agg(agg_t *a)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/results/%s.lock", a->data_dir, a->name);
  a->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (a->lockfd < 0) {
    zql_strbuf_addf(a->err, "cannot open %s: %s", path, strerror(errno));
    return ZQL_E_IO;
  }
  while (flock(a->lockfd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      zql_strbuf_addf(a->err, "cannot lock %s: %s", path, strerror(errno));
      return ZQL_E_IO;
    }
  }
  return 0;
}

static bool is_output(const zql_ptable_t *t)
{
  return !t->intermediate && !t->prepass;
}

static void agg_free(agg_t *a)
{
  if (a->lockfd >= 0)
    close(a->lockfd); /* releases the flock */
  zql_xplan_free(a->x);
  zql_plan_free(a->plan);
  zql_free(a->bk);
  zql_free(a->src_coll);
  zql_evlog_reader_close(a->reader);
}

static int wm_read(zql_store_txn_t *t, const char *name, wm_t *w, zql_strbuf_t *err)
{
  memset(w, 0, sizeof *w);
  bson_t d;
  int rc = zql_store_get(t, ZQL_WM_COLL, name, strlen(name), &d, err);
  if (rc == ZQL_STORE_NOTFOUND)
    return 0;
  if (rc)
    return rc;
  w->seq = doc_int(&d, "seq", 0);
  w->run = doc_int(&d, "run", 0);
  w->swept = doc_int(&d, "swept", 0);
  bson_iter_t it;
  if (bson_iter_init_find(&it, &d, "et") && BSON_ITER_HOLDS_DATE_TIME(&it)) {
    w->et = bson_iter_date_time(&it);
    w->has_et = true;
  }
  return 0;
}

static int wm_write(zql_store_txn_t *t, const char *name, const wm_t *w, zql_strbuf_t *err)
{
  bson_t d = BSON_INITIALIZER;
  bson_append_utf8(&d, "_id", 3, name, -1);
  bson_append_int64(&d, "seq", 3, w->seq);
  if (w->has_et)
    bson_append_date_time(&d, "et", 2, w->et);
  bson_append_int64(&d, "run", 3, w->run);
  bson_append_date_time(&d, "swept", 5, w->swept);
  int rc = zql_store_put(t, ZQL_WM_COLL, name, strlen(name), &d, err);
  bson_destroy(&d);
  return rc;
}

static int run_read(zql_store_txn_t *t, const char *name, int64_t run, runrec_t *r,
                    zql_strbuf_t *err)
{
  memset(r, 0, sizeof *r);
  if (run <= 0)
    return 0;
  uint8_t key[300];
  size_t kl = run_key(key, name, run);
  bson_t d;
  int rc = zql_store_get(t, ZQL_RUNS_COLL, key, kl, &d, err);
  if (rc == ZQL_STORE_NOTFOUND)
    return 0;
  if (rc)
    return rc;
  r->run = run;
  snprintf(r->kind, sizeof r->kind, "%s", doc_str(&d, "kind") ? doc_str(&d, "kind") : "");
  snprintf(r->status, sizeof r->status, "%s", doc_str(&d, "status") ? doc_str(&d, "status") : "");
  r->lo = doc_int(&d, "lo", 0);
  r->hi = doc_int(&d, "hi", 0);
  r->started = doc_int(&d, "started", 0);
  r->from = doc_int(&d, "from", 0);
  r->to = doc_int(&d, "to", 0);
  r->done = doc_int(&d, "done", 0);
  return 0;
}

/* Write the run record; with a report and status "committed"/"failed" its counts too. */
static int run_write(agg_t *a, zql_store_txn_t *t, const runrec_t *r, const char *error)
{
  uint8_t key[300];
  size_t kl = run_key(key, a->name, r->run);
  bson_t d = BSON_INITIALIZER, c;
  bson_append_utf8(&d, "agg", 3, a->name, -1);
  bson_append_int64(&d, "run", 3, r->run);
  bson_append_utf8(&d, "kind", 4, r->kind, -1);
  bson_append_int64(&d, "lo", 2, r->lo);
  bson_append_int64(&d, "hi", 2, r->hi);
  bson_append_utf8(&d, "status", 6, r->status, -1);
  bson_append_date_time(&d, "started", 7, r->started);
  if (strcmp(r->status, "started") != 0)
    bson_append_date_time(&d, "finished", 8, zql_wall_ms());
  if (strcmp(r->kind, "backfill") == 0) {
    bson_append_date_time(&d, "from", 4, r->from);
    bson_append_date_time(&d, "to", 2, r->to);
    bson_append_date_time(&d, "done", 4, r->done);
  }
  const zql_incr_report_t *p = a->rep;
  bson_append_document_begin(&d, "counts", 6, &c);
  bson_append_int64(&c, "events", 6, (int64_t)p->events);
  bson_append_int64(&c, "inserted", 8, (int64_t)p->inserted);
  bson_append_int64(&c, "updated", 7, (int64_t)p->updated);
  bson_append_int64(&c, "unchanged", 9, (int64_t)p->unchanged);
  bson_append_int64(&c, "deleted", 7, (int64_t)p->deleted);
  bson_append_int64(&c, "late", 4, (int64_t)p->late);
  bson_append_int64(&c, "dropped", 7, (int64_t)p->dropped);
  bson_append_int64(&c, "errors", 6, (int64_t)p->errors);
  bson_append_document_end(&d, &c);
  if (error)
    bson_append_utf8(&d, "error", 5, error, -1);
  int rc = zql_store_put(t, ZQL_RUNS_COLL, key, kl, &d, a->err);
  bson_destroy(&d);
  return rc;
}

/* `from agg X`: where X's documents are and how far X got. */
static int load_source(agg_t *a, zql_store_txn_t *t)
{
  const char *x = a->plan->source_agg;
  zql_catentry_t e;
  bson_t doc;
  int rc = zql_catalog_get(t, x, &e, &doc, a->err);
  if (rc == ZQL_STORE_NOTFOUND) {
    zql_strbuf_addf(a->err, "%s reads `from agg %s`, which the results store does not hold "
                    "(zql agg add it first)", a->name, x);
    return ZQL_E_NO_AGG;
  }
  zql_plan_t *xp = NULL;
  if (!rc)
    rc = zql_plan_from_bson(e.plan, e.plan_len, &xp, a->err);
  for (uint32_t i = 0; !rc && xp && i < xp->ntables && !a->src_coll; i++)
    if (is_output(&xp->tables[i]) && !(a->src_coll = zql_strndup(xp->tables[i].into, strlen(xp->tables[i].into))))
      rc = ZQL_E_NOMEM;
  if (!rc && !a->src_coll) {
    zql_strbuf_addf(a->err, "%s: `from agg %s`: %s has no output table", a->name, x, x);
    rc = ZQL_E_USAGE;
  }
  zql_plan_free(xp);
  wm_t w;
  if (!rc && (rc = wm_read(t, x, &w, a->err)) == 0)
    a->src_seq = w.seq;
  return rc;
}

/* Load the catalog entry (the plan), the watermark and the last run record. */
static int agg_load(agg_t *a)
{
  zql_store_txn_t *t;
  int rc = zql_store_begin(a->s, false, &t, a->err);
  if (rc)
    return rc;
  zql_catentry_t e;
  bson_t doc;
  rc = zql_catalog_get(t, a->name, &e, &doc, a->err);
  if (rc == ZQL_STORE_NOTFOUND) {
    zql_strbuf_addf(a->err, "no aggregate named '%s' in the results store (zql agg list)",
                    a->name);
    rc = ZQL_E_NO_AGG;
  }
  if (!rc) {
    bson_iter_t it;
    a->rebuild_pending = bson_iter_init_find(&it, &doc, "rebuild") &&
                         BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
    rc = zql_plan_from_bson(e.plan, e.plan_len, &a->plan, a->err);
  }
  if (!rc)
    rc = wm_read(t, a->name, &a->wm, a->err);
  if (!rc)
    rc = run_read(t, a->name, a->wm.run, &a->last, a->err);
  if (!rc && a->plan->source_agg)
    rc = load_source(a, t);
  zql_store_abort(t);
  if (rc)
    return rc;
  if ((rc = zql_xplan_prepare(a->plan, a->now, &a->x, a->err)) != 0)
    return rc;
  a->bk = zql_calloc(a->plan->ntables ? a->plan->ntables : 1, sizeof *a->bk);
  if (!a->bk)
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < a->plan->ntables; i++) {
    const zql_ptable_t *pt = &a->plan->tables[i];
    if (pt->bucket < 0)
      continue;
    const zql_pbucket_t *b = &a->plan->buckets[pt->bucket];
    if ((rc = zql_bucket_setup(&a->bk[i], b->unit, b->every, b->tz, b->week_start, b->origin,
                               a->err)) != 0)
      return rc;
  }
  return 0;
}

static int open_log(agg_t *a)
{
  if (a->reader)
    return 0;
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/events", a->data_dir);
  if (stat(path, &st) != 0) {
    zql_strbuf_addf(a->err, "no event log in %s", a->data_dir);
    return ZQL_E_IO;
  }
  /* the run reads past the watermark: older segments are only indexed, not mapped */
  return zql_evlog_reader_open_after(a->data_dir, a->wm.seq, &a->reader, a->err);
}

/* ==== execution ==== */

static int execute(agg_t *a, int64_t lo, int64_t hi, int64_t ts_lo, int64_t ts_hi,
                   zql_result_t **res)
{
  zql_input_t in;
  zql_store_input_t *si = NULL;
  int rc = 0;
  if (a->plan->source_agg) {
    /* `from agg X`: every stored document of X, one snapshot (R17 rollups) */
    zql_store_txn_t *t;
    if ((rc = zql_store_begin(a->s, false, &t, a->err)) != 0)
      return rc;
    rc = zql_store_input_new(t, a->src_coll, ZQL_STORE_INPUT_STATES, &in, &si, a->err);
    zql_store_abort(t);
    if (rc)
      return rc;
    lo = in.lo;
    hi = in.hi;
    ts_lo = INT64_MIN;
    ts_hi = INT64_MAX;
  } else if ((rc = open_log(a)) != 0) {
    return rc;
  } else {
    zql_evlog_input(a->reader, &in);
  }
  if (in.hi > in.lo && hi - lo < in.hi - in.lo) /* the range's share of the bytes */
    in.bytes = (uint64_t)((double)in.bytes * (double)(hi - lo) / (double)(in.hi - in.lo));
  in.lo = lo;
  in.hi = hi;
  zql_run_opts_t ro;
  zql_run_opts_init(&ro);
  ro.keep_states = true;
  ro.threads = agg_threads(a);
  ro.mem_limit = a->o->mem_limit;
  ro.ts_lo = ts_lo;
  ro.ts_hi = ts_hi;
  char tmp[4096];
  if (a->o->tmp_dir) {
    ro.tmp_dir = a->o->tmp_dir;
  } else {
    snprintf(tmp, sizeof tmp, "%s/tmp", a->data_dir);
    if (mkdir(tmp, 0700) == 0 || errno == EEXIST)
      ro.tmp_dir = tmp;
  }
  double t0 = mono();
  rc = zql_exec_run(a->x, &in, &ro, res, a->err);
  a->rep->exec_seconds += mono() - t0;
  zql_store_input_free(si);
  if (rc)
    return rc;
  a->rep->events += (*res)->counters.events;
  /* on_error fail (R5): an ERROR row or cell aborts the run before commit */
  if (a->plan->strict) {
    const zql_result_t *r = *res;
    uint64_t cells = 0;
    for (uint32_t t = 0; t < r->ntables; t++)
      for (uint32_t c = 0; c < r->tables[t].ncols; c++)
        cells += r->tables[t].error_cells[c];
    if (r->counters.nerrors || cells) {
      zql_strbuf_addf(a->err, "%s: on_error fail: %s%s", a->name,
                      r->counters.nerrors ? r->counters.errors[0].msg : "",
                      r->counters.nerrors ? "" : "an aggregate yielded ERROR");
      zql_result_free(*res);
      *res = NULL;
      return ZQL_E_RUN_FAILED;
    }
  }
  return 0;
}

/* The rows of a result's output tables, sorted by store id. */
typedef struct orow {
  uint32_t t;           /* result table */
  uint64_t r;           /* row */
  size_t off, len;      /* id bytes in ids.buf */
  const uint8_t *id;    /* ids.buf + off, once every id is rendered */
} orow_t;

typedef struct rowset {
  orow_t *v;
  size_t n;
  zql_strbuf_t ids;
} rowset_t;

static const uint8_t *row_id(const rowset_t *rs, const orow_t *o)
{
  (void)rs;
  return o->id;
}

static int orow_cmp(const void *x, const void *y)
{
  const orow_t *a = x, *b = y;
  if (a->t != b->t)
    return a->t < b->t ? -1 : 1;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->id, b->id, n) : 0;
  return c ? c : a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static void rowset_free(rowset_t *rs)
{
  zql_free(rs->v);
  zql_strbuf_release(&rs->ids);
}

/* Render every row's id; refuse ids that are too long or shared by two groups. */
static int rowset_build(agg_t *a, const zql_result_t *res, rowset_t *rs)
{
  memset(rs, 0, sizeof *rs);
  size_t n = 0;
  for (uint32_t t = 0; t < res->ntables; t++)
    n += res->tables[t].nrows;
  rs->v = zql_calloc(n ? n : 1, sizeof *rs->v);
  if (!rs->v)
    return ZQL_E_NOMEM;
  for (uint32_t t = 0; t < res->ntables; t++) {
    uint32_t pt = zql_outdoc_table(a->plan, t);
    const zql_result_table_t *rt = &res->tables[t];
    for (uint64_t r = 0; r < rt->nrows; r++) {
      orow_t *o = &rs->v[rs->n++];
      o->t = t;
      o->r = r;
      o->off = rs->ids.len;
      zql_outdoc_id(&rs->ids, a->plan, pt, &rt->vals[r * rt->ncols]);
      o->len = rs->ids.len - o->off;
      if (o->len == 0 || o->len > ZQL_STORE_MAX_ID) {
        zql_strbuf_addf(a->err, "%s: the _id of a group is %s (%zu bytes; at most %d): "
                        "shorten the key template", a->name, o->len ? "too long" : "empty",
                        o->len, ZQL_STORE_MAX_ID);
        return ZQL_E_RUN_FAILED;
      }
    }
  }
  if (rs->ids.oom)
    return ZQL_E_NOMEM;
  for (size_t i = 0; i < rs->n; i++)
    rs->v[i].id = (const uint8_t *)rs->ids.buf + rs->v[i].off;
  qsort(rs->v, rs->n, sizeof *rs->v, orow_cmp);
  for (size_t i = 1; i < rs->n; i++)
    if (rs->v[i].t == rs->v[i - 1].t && rs->v[i].len == rs->v[i - 1].len &&
        memcmp(row_id(rs, &rs->v[i]), row_id(rs, &rs->v[i - 1]), rs->v[i].len) == 0) {
      zql_strbuf_addf(a->err, "%s: two groups have the same _id '%.*s': the key template "
                      "must name every key", a->name, (int)rs->v[i].len,
                      (const char *)row_id(rs, &rs->v[i]));
      return ZQL_E_RUN_FAILED;
    }
  return 0;
}

/* The hidden count of a row's partial states (events in the group), or 1. */
static int64_t row_events(const zql_ptable_t *pt, const zql_val_t *state)
{
  if (pt->count_slot < 0 || state->t != ZQL_V_DOC)
    return 1;
  char key[16];
  snprintf(key, sizeof key, "#%" PRId32, pt->count_slot);
  bson_t d;
  bson_iter_t it, in;
  if (!bson_init_static(&d, state->u.p, state->len) || !bson_iter_init_find(&it, &d, key) ||
      !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &in) ||
      !bson_iter_find(&in, "n") || !BSON_ITER_HOLDS_INT64(&in))
    return 1;
  return bson_iter_int64(&in);
}

/* Put the document of a row with its meta. */
static int put_row(agg_t *a, zql_store_txn_t *txn, const char *coll, uint32_t pt,
                   const zql_val_t *row, const zql_val_t *state, const uint8_t *id,
                   size_t idlen, const zql_outdoc_meta_t *meta)
{
  bson_t d = BSON_INITIALIZER;
  int rc = zql_outdoc_build(&d, a->plan, pt, row, state, (const char *)id, idlen, meta)
               ? zql_store_put(txn, coll, id, idlen, &d, a->err)
               : ZQL_E_NOMEM;
  bson_destroy(&d);
  return rc;
}

/* A stored document with new bookkeeping fields (late drops change only _late, _hw), in d
 * (initialized). */
static void meta_doc(bson_t *d, const bson_t *old, const zql_outdoc_meta_t *meta)
{
  bson_iter_t it;
  if (bson_iter_init(&it, old))
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      if (strcmp(k, "_hw") && strcmp(k, "_rev") && strcmp(k, "_late"))
        bson_append_iter(d, k, -1, &it);
    }
  bson_append_int64(d, "_hw", 3, meta->hw);
  bson_append_int64(d, "_rev", 4, meta->rev);
  bson_append_int64(d, "_late", 5, meta->late);
}

/* Add the run's ERROR counts to zagg.NAME._errors (R5). */
static int add_errors(agg_t *a, zql_store_txn_t *txn, const char *coll, const zql_result_t *res)
{
  for (uint32_t i = 0; i < res->counters.nerrors; i++) {
    const zql_errcount_t *e = &res->counters.errors[i];
    size_t len = strlen(e->msg);
    if (len == 0 || len > ZQL_STORE_MAX_ID)
      len = len ? ZQL_STORE_MAX_ID : 0;
    const char *id = len ? e->msg : "error";
    size_t idlen = len ? len : 5;
    bson_t old;
    int64_t n = (int64_t)e->n;
    int rc = zql_store_get(txn, coll, id, idlen, &old, a->err);
    if (rc == 0)
      n += doc_int(&old, "n", 0);
    else if (rc != ZQL_STORE_NOTFOUND)
      return rc;
    bson_t d = BSON_INITIALIZER;
    bson_append_utf8(&d, "_id", 3, id, (int)idlen);
    bson_append_int64(&d, "n", 1, n);
    rc = zql_store_put(txn, coll, id, idlen, &d, a->err);
    bson_destroy(&d);
    if (rc)
      return rc;
    a->rep->errors += e->n;
  }
  return 0;
}

/* Retention (R19): delete documents whose bucket starts before now - retain. */
typedef struct sweep {
  int64_t cutoff;
  zql_strbuf_t ids;   /* u32 length ++ id, for each document to delete */
  uint64_t n;
} sweep_t;

static int sweep_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  sweep_t *s = arg;
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, "b") && BSON_ITER_HOLDS_DATE_TIME(&it) &&
      bson_iter_date_time(&it) < s->cutoff) {
    ids_add(&s->ids, id, idlen);
    s->n++;
  }
  return 0;
}

static int sweep_coll(agg_t *a, zql_store_txn_t *txn, const char *coll, int64_t cutoff)
{
  sweep_t s = {cutoff, ZQL_STRBUF_INIT, 0};
  int rc = zql_store_scan(txn, coll, NULL, 0, NULL, 0, sweep_visit, &s, a->err);
  if (!rc)
    rc = ids_delete(txn, coll, &s.ids, a->err);
  if (!rc)
    a->rep->deleted += s.n;
  zql_strbuf_release(&s.ids);
  return rc;
}

static int retention(agg_t *a, zql_store_txn_t *txn, wm_t *w, bool force)
{
  const int64_t every = 3600 * 1000; /* sweep at most once an hour: it scans every doc */
  if (a->plan->retain_ms < 0 || (!force && w->swept && a->now - w->swept < every))
    return 0;
  for (uint32_t i = 0; i < a->plan->ntables; i++) {
    const zql_ptable_t *pt = &a->plan->tables[i];
    if (!is_output(pt) || pt->bucket_col < 0)
      continue;
    int rc = sweep_coll(a, txn, pt->into, a->now - a->plan->retain_ms);
    if (rc)
      return rc;
  }
  w->swept = a->now;
  return 0;
}

/* R19: whether a row of output table pti lies in a bucket that started before now -
 * retain. No run writes such a row (the sweep removes the stored ones), so the outputs
 * never depend on when the sweep last ran. */
static bool past_retention(const agg_t *a, uint32_t pti, const zql_val_t *row)
{
  const zql_ptable_t *pt = &a->plan->tables[pti];
  return a->plan->retain_ms >= 0 && pt->bucket_col >= 0 &&
         row[pt->bucket_col].t == ZQL_V_DATE &&
         row[pt->bucket_col].u.i < a->now - a->plan->retain_ms;
}

/* ==== the kinds of runs ==== */

/* The end of an incremental commit: the run's error counts, the retention sweep, the run
 * record (committed) and the watermark (hi, and the event time seen), then commit -- all
 * in the transaction of the output documents. rc: the outcome so far (non-zero: abort).
 * Frees txn; returns the result. */
static int finish_commit(agg_t *a, zql_store_txn_t *txn, runrec_t *r, const zql_result_t *res,
                         int rc, bool any, int64_t tmax)
{
  char ecoll[300];
  if (!rc)
    rc = add_errors(a, txn, errors_coll(ecoll, sizeof ecoll, a->name), res);
  wm_t w = a->wm;
  w.seq = r->hi;
  w.run = r->run;
  if (any && (!w.has_et || tmax > w.et)) {
    w.et = tmax;
    w.has_et = true;
  }
  if (!rc)
    rc = retention(a, txn, &w, false);
  snprintf(r->status, sizeof r->status, "committed");
  if (!rc)
    rc = run_write(a, txn, r, NULL);
  if (!rc)
    rc = wm_write(txn, a->name, &w, a->err);
  if (rc) {
    zql_store_abort(txn);
    return rc;
  }
  if ((rc = zql_store_commit(txn, a->err)) == 0)
    a->wm = w;
  return rc;
}

/* ==== commit: rows computed on the pool's threads, written in row order ==== */

#define COMMIT_BATCH 256 /* rows per batch: bounds the documents held before their puts */

/* What a row counts as in the report. */
enum { ROW_NONE, ROW_INSERTED, ROW_UPDATED, ROW_UNCHANGED, ROW_DELETED };

/* What one row of a batch becomes. Any thread of the pool computes it from the stored
 * document, read in that thread's own read transaction: the snapshot the write transaction
 * started from, which no earlier row of the run can have changed (a run's ids are unique).
 * The writer -- the thread that holds the write transaction -- puts the rows in row order
 * as they become ready, so the same writes happen in the same order whatever the threads,
 * and writing overlaps with the merges still running. */
typedef struct crow {
  atomic_bool done; /* the fields below are set (release; the writer acquires) */
  uint8_t kind;     /* ROW_NONE, ... */
  int rc;           /* a failure, described in err */
  int64_t late;     /* late events merged */
  int64_t dropped;  /* late events not merged (drop, sidecar) */
  bool has_doc, has_side;
  bson_t doc;       /* the new document, or the stored one with new bookkeeping (late
                     * events not merged) */
  bson_t side;      /* late events kept aside (sidecar): the entry, id in sid */
  zql_strbuf_t sid, err;
} crow_t;

typedef struct cpool {
  agg_t *a;
  const runrec_t *r;
  const zql_result_t *res;
  const rowset_t *rs;
  size_t b0, nb;           /* the batch: rows b0 .. b0 + nb - 1 */
  crow_t *rows;            /* [nb] */
  uint32_t ntables;
  bool reduce, track_late;
  int64_t W;               /* R13: buckets that ended at or before W are closed */
  const char *late;
  zql_store_txn_t *txn;    /* the writer's */
  zql_store_txn_t **rtx;   /* [worker]: read transactions, begun on first use */
  zql_refinal_t **rf;      /* [worker * ntables + table], made on first use */
  zql_arena_t **arena;     /* [worker] */
  size_t next;             /* writer: the batch's next row to put */
  int rc;                  /* writer: the first failure in row order */
} cpool_t;

/* Merge the stored document old's states with the row's partial (mode reduce), finalize,
 * and build the new document in c->doc. */
static int merge_row(cpool_t *p, crow_t *c, const orow_t *o, uint32_t pti, const bson_t *old,
                     const zql_val_t *row, const zql_val_t *state,
                     const zql_outdoc_meta_t *m, uint32_t worker)
{
  agg_t *a = p->a;
  const zql_ptable_t *pt = &a->plan->tables[pti];
  bson_t ost, nst;
  bson_iter_t it;
  const uint8_t *sd = NULL;
  uint32_t sl = 0;
  if (bson_iter_init_find(&it, old, "state") && BSON_ITER_HOLDS_DOCUMENT(&it))
    bson_iter_document(&it, &sl, &sd);
  if (!sd || !bson_init_static(&ost, sd, sl) || state->t != ZQL_V_DOC ||
      !bson_init_static(&nst, state->u.p, state->len)) {
    zql_strbuf_addf(&c->err, "%s: stored document '%.*s' in %s has no saved states", a->name,
                    (int)o->len, (const char *)o->id, pt->into);
    return ZQL_E_CORRUPT;
  }
  zql_refinal_t **rf = &p->rf[(size_t)worker * p->ntables + pti];
  zql_arena_t *arena = p->arena[worker];
  const bson_t *sts[2] = {&ost, &nst};
  zql_val_t *cols = zql_arena_alloc(arena, pt->ncols * sizeof *cols + 1);
  zql_val_t merged;
  zql_strbuf_t why = ZQL_STRBUF_INIT;
  int rc = cols ? 0 : ZQL_E_NOMEM;
  if (!rc && !*rf)
    rc = zql_refinal_new(a->x, pti, rf, &why);
  if (!rc)
    rc = zql_refinal_run(*rf, row, sts, 2, arena, cols, &merged, &why);
  if (!rc && !zql_outdoc_build(&c->doc, a->plan, pti, cols, &merged, (const char *)o->id,
                               o->len, m))
    rc = ZQL_E_NOMEM;
  if (rc)
    zql_strbuf_addf(&c->err, "%s: document '%.*s' in %s: %s", a->name, (int)o->len,
                    (const char *)o->id, pt->into,
                    why.buf ? why.buf : rc == ZQL_E_NOMEM ? "out of memory" : "");
  zql_strbuf_release(&why);
  zql_arena_reset(arena);
  return rc;
}

/* Row o of the batch: what it counts as and what the writer puts. */
static int compute_row(cpool_t *p, crow_t *c, const orow_t *o, uint32_t worker)
{
  agg_t *a = p->a;
  const zql_result_table_t *rt = &p->res->tables[o->t];
  uint32_t pti = zql_outdoc_table(a->plan, o->t);
  const zql_ptable_t *pt = &a->plan->tables[pti];
  const zql_val_t *row = &rt->vals[o->r * rt->ncols];
  const zql_val_t *state = &rt->state[o->r];
  if (past_retention(a, pti, row)) {
    c->kind = ROW_DELETED;
    return 0;
  }
  zql_store_txn_t **rtx = &p->rtx[worker];
  int rc;
  if (!*rtx && (rc = zql_store_begin(a->s, false, rtx, &c->err)) != 0)
    return rc;
  bson_t old;
  int g = zql_store_peek(*rtx, pt->into, o->id, o->len, &old, &c->err);
  if (g < 0)
    return g;
  zql_outdoc_meta_t m = {p->r->hi, 1, 0, true};
  if (g == 0) {
    zql_outdoc_read_meta(&old, &m);
    if (m.hw >= p->r->hi) { /* this run was already applied to it (R12) */
      c->kind = ROW_UNCHANGED;
      return 0;
    }
    m.hw = p->r->hi;
  }
  int64_t nlate = 0;
  if (p->track_late && pt->bucket_col >= 0 && row[pt->bucket_col].t == ZQL_V_DATE) {
    int64_t end;
    if (zql_bucket_end(&a->bk[pti], row[pt->bucket_col].u.i, &end) == 0 && end <= p->W)
      nlate = row_events(pt, state);
  }
  if (nlate && strcmp(p->late, "merge") != 0) {
    /* drop / sidecar: counted, not merged; sidecar keeps the partial for a backfill */
    c->dropped = nlate;
    if (strcmp(p->late, "sidecar") == 0 && a->plan->sidecar) {
      zql_strbuf_add(&c->sid, o->id, o->len);
      zql_strbuf_addf(&c->sid, "@%" PRId64, p->r->hi);
      bson_init(&c->side);
      c->has_side = true;
      bson_append_utf8(&c->side, "agg", 3, a->name, -1);
      bson_append_binary(&c->side, "id", 2, BSON_SUBTYPE_BINARY, o->id, (uint32_t)o->len);
      bson_append_int64(&c->side, "lo", 2, p->r->lo);
      bson_append_int64(&c->side, "hi", 2, p->r->hi);
      bson_append_int64(&c->side, "n", 1, nlate);
      zql_outdoc_meta_t none = {0, 0, 0, false};
      bson_t body = BSON_INITIALIZER;
      if (zql_outdoc_build(&body, a->plan, pti, row, state, (const char *)o->id, o->len, &none))
        bson_append_document(&c->side, "doc", 3, &body);
      bson_destroy(&body);
      if (c->sid.oom || c->sid.len > ZQL_STORE_MAX_ID) {
        zql_strbuf_adds(&c->err, "out of memory");
        return ZQL_E_NOMEM;
      }
    }
    if (g == 0) {
      m.late += nlate;
      bson_init(&c->doc);
      c->has_doc = true;
      meta_doc(&c->doc, &old, &m);
    }
    return 0;
  }
  m.late += nlate;
  c->late = nlate;
  if (g == 0)
    m.rev++;
  c->kind = g == 0 ? ROW_UPDATED : ROW_INSERTED;
  bson_init(&c->doc);
  c->has_doc = true;
  if (g == 0 && p->reduce)
    return merge_row(p, c, o, pti, &old, row, state, &m, worker);
  if (!zql_outdoc_build(&c->doc, a->plan, pti, row, state, (const char *)o->id, o->len, &m)) {
    zql_strbuf_adds(&c->err, "out of memory");
    return ZQL_E_NOMEM;
  }
  return 0;
}

/* The writer: put row k of the batch (done) and count it. After a failure nothing more is
 * written; the first failure in row order is the one reported. */
static void write_row(cpool_t *p, size_t k)
{
  agg_t *a = p->a;
  crow_t *c = &p->rows[k];
  size_t i = p->b0 + k;
  if (p->rc)
    return;
  if (i == p->rs->n / 2 && i)
    crash_point("mid-commit");
  if (c->rc) {
    zql_strbuf_adds(a->err, c->err.buf ? c->err.buf : "cannot merge a stored document");
    p->rc = c->rc;
    return;
  }
  const orow_t *o = &p->rs->v[i];
  const char *coll = a->plan->tables[zql_outdoc_table(a->plan, o->t)].into;
  a->rep->late += (uint64_t)c->late;
  a->rep->dropped += (uint64_t)c->dropped;
  switch (c->kind) {
  case ROW_INSERTED: a->rep->inserted++; break;
  case ROW_UPDATED: a->rep->updated++; break;
  case ROW_UNCHANGED: a->rep->unchanged++; break;
  case ROW_DELETED: a->rep->deleted++; break;
  default: break;
  }
  int rc = 0;
  if (c->has_side)
    rc = zql_store_put(p->txn, a->plan->sidecar, c->sid.buf, c->sid.len, &c->side, a->err);
  if (!rc && c->has_doc)
    rc = zql_store_put(p->txn, coll, o->id, o->len, &c->doc, a->err);
  p->rc = rc;
}

/* The writer puts every row that is ready, in order. */
static void write_ready(cpool_t *p)
{
  while (p->next < p->nb &&
         atomic_load_explicit(&p->rows[p->next].done, memory_order_acquire))
    write_row(p, p->next++);
}

/* Pool task: row `task` of the batch. Worker 0 is the calling thread (pool.h), the one
 * with the write transaction: it writes what is ready after each of its rows. */
static int row_task(void *arg, uint32_t task, uint32_t worker)
{
  cpool_t *p = arg;
  crow_t *c = &p->rows[task];
  c->rc = compute_row(p, c, &p->rs->v[p->b0 + task], worker);
  atomic_store_explicit(&c->done, true, memory_order_release);
  if (worker == 0)
    write_ready(p);
  return 0;
}

/* Commit one incremental run (modes reduce and merge) in one transaction, in batches of
 * rows: each row's stored document is read and merged with the run's states on the
 * pool's threads (in users_daily's commit each document carries a 16 KiB hll and an exact
 * set), and written in row order by this thread as the rows become ready. */
static int commit_incremental(agg_t *a, runrec_t *r, const zql_result_t *res, int64_t tmax,
                              bool any)
{
  rowset_t rs;
  /* the pool's threads went idle after the reduce: awake by the time the rows need them */
  zql_pool_warm(agg_threads(a));
  int rc = rowset_build(a, res, &rs);
  if (rc) {
    rowset_free(&rs);
    return rc;
  }
  crash_point("before-commit");
  double t0 = mono();
  unsigned threads = agg_threads(a);
  cpool_t p = {0};
  p.a = a;
  p.r = r;
  p.res = res;
  p.rs = &rs;
  p.ntables = a->plan->ntables ? a->plan->ntables : 1;
  p.reduce = strcmp(a->plan->mode, "reduce") == 0;
  p.track_late = a->wm.has_et;
  p.W = a->wm.et - a->plan->lateness_ms;
  p.late = a->plan->late ? a->plan->late : "merge";
  /* not cleared: a row's slot is set up before its task runs (a batch's slots take
   * 60 KiB, which calloc would clear and fault in whole) */
  size_t cap = rs.n < COMMIT_BATCH ? (rs.n ? rs.n : 1) : COMMIT_BATCH;
  p.rows = zql_malloc(cap * sizeof *p.rows);
  p.rtx = zql_calloc(threads, sizeof *p.rtx);
  p.rf = zql_calloc((size_t)threads * p.ntables, sizeof *p.rf);
  p.arena = zql_calloc(threads, sizeof *p.arena);
  if (!p.rows || !p.rtx || !p.rf || !p.arena)
    rc = ZQL_E_NOMEM;
  for (unsigned w = 0; w < threads && !rc; w++)
    if (!(p.arena[w] = zql_arena_create(NULL)))
      rc = ZQL_E_NOMEM;
  if (rc)
    zql_strbuf_adds(a->err, "out of memory");
  if (!rc)
    rc = zql_store_begin(a->s, true, &p.txn, a->err);
  for (size_t b0 = 0; b0 < rs.n && !rc; b0 += COMMIT_BATCH) {
    p.b0 = b0;
    p.nb = rs.n - b0 < COMMIT_BATCH ? rs.n - b0 : COMMIT_BATCH;
    p.next = 0;
    for (size_t k = 0; k < p.nb; k++) {
      crow_t *c = &p.rows[k];
      atomic_init(&c->done, false);
      c->kind = ROW_NONE;
      c->rc = 0;
      c->late = c->dropped = 0;
      c->has_doc = c->has_side = false;
      zql_strbuf_init(&c->sid);
      zql_strbuf_init(&c->err);
    }
    /* a few rows: no threads */
    zql_pool_run(p.nb >= 16 ? threads : 1, (uint32_t)p.nb, row_task, &p);
    write_ready(&p); /* the rows other threads finished last */
    rc = p.rc;
    for (size_t k = 0; k < p.nb; k++) {
      crow_t *c = &p.rows[k];
      if (c->has_doc)
        bson_destroy(&c->doc);
      if (c->has_side)
        bson_destroy(&c->side);
      zql_strbuf_release(&c->sid);
      zql_strbuf_release(&c->err);
    }
  }
  for (unsigned w = 0; p.rtx && w < threads; w++)
    if (p.rtx[w])
      zql_store_abort(p.rtx[w]);
  if (p.txn)
    rc = finish_commit(a, p.txn, r, res, rc, any, tmax);
  for (size_t i = 0; p.rf && i < (size_t)threads * p.ntables; i++)
    zql_refinal_free(p.rf[i]);
  for (unsigned w = 0; p.arena && w < threads; w++)
    zql_arena_delete(p.arena[w]);
  zql_free(p.rf);
  zql_free(p.arena);
  zql_free(p.rtx);
  zql_free(p.rows);
  rowset_free(&rs);
  a->rep->commit_seconds += mono() - t0;
  if (!rc)
    crash_point("after-commit");
  return rc;
}

static bool has_id(const rowset_t *rs, uint32_t t, const uint8_t *id, size_t len)
{
  size_t lo = 0, hi = rs->n;
  orow_t key = {t, 0, 0, len, id};
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const orow_t *o = &rs->v[mid];
    int c;
    if (o->t != key.t) {
      c = o->t < key.t ? -1 : 1;
    } else {
      size_t n = o->len < len ? o->len : len;
      c = memcmp(row_id(rs, o), id, n);
      if (!c)
        c = o->len < len ? -1 : o->len > len ? 1 : 0;
    }
    if (c == 0)
      return true;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

/* mode upsert: recompute, over every event up to hi, exactly the documents the new
 * events touched, and replace them. */
static int run_upsert(agg_t *a, runrec_t *r)
{
  zql_result_t *fresh = NULL, *all = NULL;
  rowset_t touched = {0}, rs = {0};
  int rc = execute(a, r->lo, r->hi, INT64_MIN, INT64_MAX, &fresh);
  if (!rc)
    rc = rowset_build(a, fresh, &touched);
  uint64_t events = a->rep->events;
  if (!rc)
    rc = execute(a, 0, r->hi, INT64_MIN, INT64_MAX, &all);
  a->rep->events = events; /* the new events, not the recomputation's */
  if (!rc)
    rc = rowset_build(a, all, &rs);
  crash_point("before-commit");
  zql_store_txn_t *txn = NULL;
  if (!rc)
    rc = zql_store_begin(a->s, true, &txn, a->err);
  for (size_t i = 0; i < rs.n && !rc; i++) {
    if (i == rs.n / 2 && i)
      crash_point("mid-commit");
    const orow_t *o = &rs.v[i];
    const uint8_t *id = row_id(&rs, o);
    if (!has_id(&touched, o->t, id, o->len))
      continue;
    const zql_result_table_t *rt = &all->tables[o->t];
    uint32_t pti = zql_outdoc_table(a->plan, o->t);
    const char *coll = a->plan->tables[pti].into;
    if (past_retention(a, pti, &rt->vals[o->r * rt->ncols])) {
      a->rep->deleted++;
      continue;
    }
    bson_t old;
    zql_outdoc_meta_t m = {r->hi, 1, 0, true};
    int g = zql_store_get(txn, coll, id, o->len, &old, a->err);
    if (g < 0) {
      rc = g;
      break;
    }
    if (g == 0) {
      zql_outdoc_read_meta(&old, &m);
      if (m.hw >= r->hi) {
        a->rep->unchanged++;
        continue;
      }
      m.hw = r->hi;
      m.rev++;
      a->rep->updated++;
    } else {
      a->rep->inserted++;
    }
    rc = put_row(a, txn, coll, pti, &rt->vals[o->r * rt->ncols], &rt->state[o->r], id, o->len,
                 &m);
  }
  if (txn)
    rc = finish_commit(a, txn, r, fresh, rc, fresh->counters.max_ts != INT64_MIN,
                       fresh->counters.max_ts);
  rowset_free(&touched);
  rowset_free(&rs);
  zql_result_free(fresh);
  zql_result_free(all);
  if (!rc)
    crash_point("after-commit");
  return rc;
}

static const char *shadow_name(char *buf, size_t size, const char *coll, int64_t run)
{
  snprintf(buf, size, "%s.__rebuild_%" PRId64, coll, run);
  return buf;
}

/* full / rebuild (R15): everything up to hi into shadow collections, then one transaction
 * swaps them in and moves the watermark. */
static int run_full(agg_t *a, runrec_t *r)
{
  zql_result_t *res = NULL;
  rowset_t rs = {0};
  int64_t tmax = 0;
  bool any = false;
  int rc = execute(a, 0, r->hi, INT64_MIN, INT64_MAX, &res);
  if (!rc) {
    any = res->counters.max_ts != INT64_MIN;
    tmax = res->counters.max_ts;
    rc = rowset_build(a, res, &rs);
  }
  crash_point("before-commit");
  char sh[600], ecoll[300], esh[600];
  errors_coll(ecoll, sizeof ecoll, a->name);
  shadow_name(esh, sizeof esh, ecoll, r->run);
  zql_store_txn_t *txn = NULL;
  if (!rc)
    rc = zql_store_begin(a->s, true, &txn, a->err);
  /* a shadow left by an earlier attempt of this run starts over */
  for (uint32_t i = 0; i < a->plan->ntables && !rc; i++)
    if (is_output(&a->plan->tables[i])) {
      rc = zql_store_drop(txn, shadow_name(sh, sizeof sh, a->plan->tables[i].into, r->run),
                          a->err);
      rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
    }
  if (!rc) {
    rc = zql_store_drop(txn, esh, a->err);
    rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
  }
  for (size_t i = 0; i < rs.n && !rc; i++) {
    if (i == rs.n / 2 && i)
      crash_point("mid-commit");
    const orow_t *o = &rs.v[i];
    const zql_result_table_t *rt = &res->tables[o->t];
    uint32_t pti = zql_outdoc_table(a->plan, o->t);
    const zql_ptable_t *pt = &a->plan->tables[pti];
    const zql_val_t *row = &rt->vals[o->r * rt->ncols];
    if (past_retention(a, pti, row)) {
      a->rep->deleted++;
      continue;
    }
    zql_outdoc_meta_t m = {r->hi, 1, 0, true};
    rc = put_row(a, txn, shadow_name(sh, sizeof sh, pt->into, r->run), pti, row,
                 &rt->state[o->r], row_id(&rs, o), o->len, &m);
    a->rep->inserted++;
  }
  if (!rc)
    rc = add_errors(a, txn, esh, res);
  if (!rc) {
    rc = zql_store_commit(txn, a->err);
    txn = NULL;
  }
  if (txn) {
    zql_store_abort(txn);
    txn = NULL;
  }
  crash_point(rc ? "" : "rebuild-built");
  /* the swap */
  if (!rc)
    rc = zql_store_begin(a->s, true, &txn, a->err);
  for (uint32_t i = 0; i < a->plan->ntables && !rc; i++)
    if (is_output(&a->plan->tables[i]))
      rc = zql_store_replace_collection(
          txn, shadow_name(sh, sizeof sh, a->plan->tables[i].into, r->run),
          a->plan->tables[i].into, a->err);
  if (!rc)
    rc = zql_store_replace_collection(txn, esh, ecoll, a->err);
  wm_t w = a->wm;
  w.seq = r->hi;
  w.run = r->run;
  w.has_et = any;
  w.et = tmax;
  w.swept = a->now;
  snprintf(r->status, sizeof r->status, "committed");
  if (!rc)
    rc = run_write(a, txn, r, NULL);
  if (!rc)
    rc = wm_write(txn, a->name, &w, a->err);
  if (!rc && a->rebuild_pending) {
    /* the definition changed with --rebuild: from now on it is the current one */
    bson_t old, d = BSON_INITIALIZER;
    bson_iter_t it;
    rc = zql_store_get(txn, ZQL_CAT_COLL, a->name, strlen(a->name), &old, a->err);
    if (!rc && bson_iter_init(&it, &old))
      while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "rebuild") != 0)
          bson_append_iter(&d, bson_iter_key(&it), -1, &it);
    if (!rc)
      rc = zql_store_put(txn, ZQL_CAT_COLL, a->name, strlen(a->name), &d, a->err);
    bson_destroy(&d);
  }
  if (!rc) {
    crash_point("rebuild-swap");
    rc = zql_store_commit(txn, a->err);
    txn = NULL;
  }
  if (txn)
    zql_store_abort(txn);
  if (!rc) {
    a->wm = w;
    a->rebuild_pending = false;
  }
  rowset_free(&rs);
  zql_result_free(res);
  if (!rc)
    crash_point("after-commit");
  return rc;
}

static int run_incremental(agg_t *a, runrec_t *r)
{
  zql_result_t *res = NULL;
  int rc = execute(a, r->lo, r->hi, INT64_MIN, INT64_MAX, &res);
  if (!rc)
    rc = commit_incremental(a, r, res, res->counters.max_ts,
                            res->counters.max_ts != INT64_MIN);
  zql_result_free(res);
  return rc;
}

static int backfill_continue(agg_t *a, runrec_t *r); /* below */

/* The bookkeeping of a recomputed document that replaces the stored one (if any): _hw =
 * hi, _rev + 1, _late kept; counted as updated or inserted. */
static int recompute_meta(agg_t *a, zql_store_txn_t *txn, const char *coll, const orow_t *o,
                          int64_t hi, zql_outdoc_meta_t *m)
{
  *m = (zql_outdoc_meta_t){hi, 1, 0, true};
  bson_t old;
  int g = zql_store_get(txn, coll, o->id, o->len, &old, a->err);
  if (g < 0)
    return g;
  if (g == 0) {
    zql_outdoc_read_meta(&old, m);
    m->hw = hi;
    m->rev++;
    a->rep->updated++;
  } else {
    a->rep->inserted++;
  }
  return 0;
}

/* ==== recompute-dirty (R14) ==== */

/* A time bucket the new events fall in: its start, its events, whether it was closed (its
 * end at or before the event-time watermark W, R13) before this run. */
typedef struct dbucket {
  int64_t start, end;
  int64_t events;
  bool closed;
} dbucket_t;

static int dbucket_cmp(const void *x, const void *y)
{
  const dbucket_t *a = x, *b = y;
  return a->start < b->start ? -1 : a->start > b->start;
}

/* The distinct buckets of the timestamps of events (lo, hi], ascending, with the events of
 * each, read from the frames alone (no document is decoded); *tmax: the largest time. */
static int dirty_buckets(agg_t *a, const zql_bucket_t *bk, int64_t lo, int64_t hi,
                         dbucket_t **out, size_t *nout, int64_t *tmax)
{
  *out = NULL;
  *nout = 0;
  *tmax = INT64_MIN;
  int rc = open_log(a);
  if (rc)
    return rc;
  zql_evlog_range_t q;
  zql_evlog_range_all(&q);
  q.seq_lo = lo;
  q.seq_hi = hi;
  zql_evlog_cursor_t *c = NULL;
  if ((rc = zql_evlog_cursor_open(a->reader, &q, &c, a->err)) != 0)
    return rc;
  zql_evlog_cursor_use_pread(c); /* each record is read once, its views batch by batch */
  dbucket_t *v = NULL;
  size_t n = 0, cap = 0;
  zql_evlog_view_t views[256];
  int k;
  while (rc == 0 && (k = zql_evlog_cursor_next(c, views, 256, a->err)) != 0) {
    if (k < 0) {
      rc = k;
      break;
    }
    for (int i = 0; i < k && !rc; i++) {
      int64_t ts = views[i].ts;
      if (ts > *tmax)
        *tmax = ts;
      if (n && ts >= v[n - 1].start && ts < v[n - 1].end) { /* events come mostly in order */
        v[n - 1].events++;
        continue;
      }
      int64_t s, e;
      if (zql_bucket_start(bk, ts, &s) != 0 || zql_bucket_end(bk, ts, &e) != 0)
        continue; /* outside the representable times: no bucket, as in the executor */
      if (n == cap) {
        size_t nc = cap ? 2 * cap : 64;
        dbucket_t *nv = zql_reallocarray(v, nc, sizeof *nv);
        if (!nv) {
          rc = ZQL_E_NOMEM;
          zql_strbuf_adds(a->err, "out of memory");
          break;
        }
        v = nv;
        cap = nc;
      }
      v[n++] = (dbucket_t){s, e, 1, false};
    }
  }
  zql_evlog_cursor_close(c);
  if (rc) {
    zql_free(v);
    return rc;
  }
  /* sort, then one entry per bucket */
  if (n)
    qsort(v, n, sizeof *v, dbucket_cmp);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (m && v[m - 1].start == v[i].start)
      v[m - 1].events += v[i].events;
    else
      v[m++] = v[i];
  }
  *out = v;
  *nout = m;
  return 0;
}

#define DIRTY_RANGES 4

/* The bucket holding time b (a document's b), or NULL. */
static const dbucket_t *dbucket_find(const dbucket_t *v, size_t n, int64_t b)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid].start < b)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && v[lo].start == b ? &v[lo] : NULL;
}

typedef struct stale {
  const dbucket_t *v;
  size_t n;
  const rowset_t *rs;   /* the recomputed rows, one rowset per range */
  size_t nrs;
  zql_strbuf_t ids;
  uint64_t count;
} stale_t;

/* A stored document of a recomputed bucket that the recomputation did not produce (a
 * value that left the ranking, a group that no longer passes `having`): to delete. */
static int stale_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  stale_t *s = arg;
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "b") || !BSON_ITER_HOLDS_DATE_TIME(&it))
    return 0;
  const dbucket_t *d = dbucket_find(s->v, s->n, bson_iter_date_time(&it));
  if (!d || d->events < 0)
    return 0; /* not recomputed (or skipped as late) */
  for (size_t i = 0; i < s->nrs; i++)
    if (has_id(&s->rs[i], 0, id, idlen))
      return 0;
  ids_add(&s->ids, id, idlen);
  s->count++;
  return 0;
}

/* R14 for a plan zql_plan_recompute_dirty accepts: the buckets the events (lo, hi] fall in
 * are recomputed from all their events up to hi (read by timestamp, one engine run per
 * run of adjacent buckets), and their documents replaced -- new rows put, rows the
 * recomputation no longer gives deleted -- in the transaction that moves the watermark.
 * Late events (R13): `merge` recomputes a closed bucket and adds its late events to the
 * documents' _late; `drop` and `sidecar` leave a closed bucket as it is and count them
 * (the partial of a non-mergeable plan cannot be kept for a later merge: a backfill or a
 * rebuild recomputes the bucket with them). */
static int run_dirty(agg_t *a, runrec_t *r)
{
  const zql_ptable_t *pt = &a->plan->tables[0];
  const zql_bucket_t *bk = &a->bk[0];
  dbucket_t *v = NULL;
  size_t nv = 0;
  int64_t tmax;
  /* the new events once through the plan: their ERROR counts (R5) and events, as any run */
  zql_result_t *fresh = NULL;
  int rc = execute(a, r->lo, r->hi, INT64_MIN, INT64_MAX, &fresh);
  if (!rc)
    rc = dirty_buckets(a, bk, r->lo, r->hi, &v, &nv, &tmax);
  uint64_t events = a->rep->events;
  bool track_late = a->wm.has_et;
  int64_t W = a->wm.et - a->plan->lateness_ms;
  bool merge_late = !a->plan->late || strcmp(a->plan->late, "merge") == 0;
  for (size_t i = 0; i < nv; i++) {
    v[i].closed = track_late && v[i].end <= W;
    if (v[i].closed && !merge_late) {
      a->rep->dropped += (uint64_t)v[i].events;
      v[i].events = -1; /* not recomputed */
    } else if (v[i].closed) {
      a->rep->late += (uint64_t)v[i].events;
    }
  }
  /* one engine run per range of adjacent recomputed buckets; past DIRTY_RANGES of them
   * (late events scattered over many days), one over the span from the first to the last
   * -- reading by time costs a walk of every segment whose times overlap the range, so
   * many ranges could cost more than one span (the rows of the buckets in between that
   * are not dirty are left out below) */
  size_t nranges = 0, first = nv, last = 0;
  for (size_t i = 0; i < nv; i++)
    if (v[i].events >= 0) {
      if (first == nv)
        first = i;
      else if (v[i].start != v[last].end)
        nranges++;
      last = i;
    }
  nranges += first < nv;
  bool span = nranges > DIRTY_RANGES;
  size_t nrs = 0;
  rowset_t *rs = zql_calloc(nv ? nv : 1, sizeof *rs);
  zql_result_t **res = zql_calloc(nv ? nv : 1, sizeof *res);
  if (!rc && (!rs || !res)) {
    rc = ZQL_E_NOMEM;
    zql_strbuf_adds(a->err, "out of memory");
  }
  for (size_t i = 0; i < nv && !rc;) {
    if (v[i].events < 0) {
      i++;
      continue;
    }
    size_t j = i + 1;
    if (span)
      j = last + 1;
    else
      while (j < nv && v[j].events >= 0 && v[j].start == v[j - 1].end)
        j++;
    rc = execute(a, 0, r->hi, v[i].start, v[j - 1].end, &res[nrs]);
    if (!rc)
      rc = rowset_build(a, res[nrs], &rs[nrs]);
    nrs++;
    i = j;
  }
  a->rep->events = events; /* the new events, not the recomputation's */
  crash_point("before-commit");
  double t0 = mono();
  zql_store_txn_t *txn = NULL;
  if (!rc)
    rc = zql_store_begin(a->s, true, &txn, a->err);
  /* the documents of the recomputed buckets that are no longer produced */
  stale_t st = {v, nv, rs, nrs, ZQL_STRBUF_INIT, 0};
  if (!rc)
    rc = zql_store_scan(txn, pt->into, NULL, 0, NULL, 0, stale_visit, &st, a->err);
  if (rc == ZQL_STORE_NOTFOUND)
    rc = 0;
  if (!rc)
    rc = ids_delete(txn, pt->into, &st.ids, a->err);
  if (!rc)
    a->rep->deleted += st.count;
  zql_strbuf_release(&st.ids);
  size_t nput = 0;
  for (size_t k = 0; k < nrs && !rc; k++)
    for (size_t i = 0; i < rs[k].n && !rc; i++) {
      if (nput++ == 1)
        crash_point("mid-commit");
      const orow_t *o = &rs[k].v[i];
      const zql_result_table_t *rt = &res[k]->tables[o->t];
      const zql_val_t *row = &rt->vals[o->r * rt->ncols];
      const zql_val_t *b = &row[pt->bucket_col];
      const dbucket_t *d = b->t == ZQL_V_DATE ? dbucket_find(v, nv, b->u.i) : NULL;
      if (!d || d->events < 0 || past_retention(a, 0, row))
        continue; /* the range's events in no recomputed bucket; or retained away */
      zql_outdoc_meta_t m;
      if ((rc = recompute_meta(a, txn, pt->into, o, r->hi, &m)) != 0)
        break;
      if (d->closed)
        m.late += d->events;
      rc = put_row(a, txn, pt->into, 0, row, &rt->state[o->r], o->id, o->len, &m);
    }
  if (txn)
    rc = finish_commit(a, txn, r, fresh, rc, tmax != INT64_MIN, tmax);
  a->rep->commit_seconds += mono() - t0;
  for (size_t k = 0; k < nrs; k++) {
    rowset_free(&rs[k]);
    zql_result_free(res[k]);
  }
  zql_free(rs);
  zql_free(res);
  zql_free(v);
  zql_result_free(fresh);
  if (!rc)
    crash_point("after-commit");
  return rc;
}

/* A run with nothing new still expires documents past their retention (R19). */
static int sweep_only(agg_t *a)
{
  if (a->plan->retain_ms < 0)
    return 0;
  wm_t w = a->wm;
  zql_store_txn_t *txn;
  int rc = zql_store_begin(a->s, true, &txn, a->err);
  if (rc)
    return rc;
  int64_t swept = w.swept;
  if ((rc = retention(a, txn, &w, false)) == 0 && w.swept != swept &&
      (rc = wm_write(txn, a->name, &w, a->err)) == 0)
    return zql_store_commit(txn, a->err);
  zql_store_abort(txn);
  return rc;
}

/* Record a failed run (the store keeps the reason; the next run starts anew from the
 * watermark, which did not move). */
static void record_failure(agg_t *a, runrec_t *r, const char *why)
{
  zql_store_txn_t *txn;
  zql_strbuf_t e = ZQL_STRBUF_INIT;
  snprintf(r->status, sizeof r->status, "failed");
  if (zql_store_begin(a->s, true, &txn, &e) == 0) {
    zql_strbuf_t *saved = a->err;
    a->err = &e;
    int rc = run_write(a, txn, r, why ? why : saved->len ? saved->buf : "failed");
    a->err = saved;
    if (rc == 0)
      zql_store_commit(txn, &e);
    else
      zql_store_abort(txn);
  }
  zql_strbuf_release(&e);
}

/* Write the run record `started` and the watermark's run number. The commit need not
 * wait for the disk: outputs, watermark and the record's `committed` state are written by
 * one later transaction, so a started record lost in a system crash only means the run
 * is not resumed but started anew from the watermark, which did not move -- the same
 * events. (A backend with per-document atomicity only must write it durably.) */
static int begin_run(agg_t *a, const runrec_t *r, const wm_t *w)
{
  zql_store_txn_t *txn;
  int rc = zql_store_begin(a->s, true, &txn, a->err);
  if (rc)
    return rc;
  if ((rc = run_write(a, txn, r, NULL)) != 0 || (rc = wm_write(txn, a->name, w, a->err)) != 0) {
    zql_store_abort(txn);
    return rc;
  }
  return zql_store_commit_lazy(txn, a->err);
}

static int agg_open(agg_t *a, zql_store_t *s, const char *data_dir, const char *name,
                    const zql_incr_opts_t *o, zql_incr_report_t *rep, zql_strbuf_t *err)
{
  memset(a, 0, sizeof *a);
  memset(rep, 0, sizeof *rep);
  a->s = s;
  a->data_dir = data_dir;
  a->name = name;
  a->lockfd = -1;
  a->o = o;
  a->rep = rep;
  a->err = err;
  a->now = o->now_ms ? o->now_ms : zql_wall_ms();
  int rc = lock_agg(a);
  return rc ? rc : agg_load(a);
}

int zql_incr_run(zql_store_t *s, const char *data_dir, const char *name, bool rebuild,
                 const zql_incr_opts_t *o, zql_incr_report_t *rep, zql_strbuf_t *err)
{
  double t0 = mono();
  zql_pool_warm(opt_threads(o)); /* running by the time the first phase needs them */
  agg_t a;
  int rc = agg_open(&a, s, data_dir, name, o, rep, err);
  if (rc) {
    agg_free(&a);
    return rc;
  }
  runrec_t r = {0};
  if (a.last.run && strcmp(a.last.status, "started") == 0 && a.rebuild_pending &&
      strcmp(a.last.kind, "rebuild") != 0) {
    /* the definition changed since that run started: its plan is gone, and the rebuild
     * that comes next recomputes everything */
    runrec_t old = a.last;
    record_failure(&a, &old, "superseded by the rebuild of a changed definition");
    a.last.status[0] = 0;
  }
  if (a.last.run && strcmp(a.last.status, "started") == 0 &&
      strcmp(a.last.kind, "backfill") == 0) {
    /* an interrupted backfill: finish its remaining (older) buckets first; the next call
     * runs the new events */
    r = a.last;
    rep->resumed = true;
    rc = backfill_continue(&a, &r);
    agg_free(&a);
    rep->seconds = mono() - t0;
    return rc;
  }
  if (a.last.run && strcmp(a.last.status, "started") == 0) {
    r = a.last; /* re-executed with the same range (R12) */
    rep->resumed = true;
  } else {
    if (!a.plan->source_agg && (rc = open_log(&a)) != 0) {
      agg_free(&a);
      return rc;
    }
    /* events up to the log's end; for `from agg X`: as far as X got */
    int64_t hi = a.plan->source_agg ? a.src_seq : zql_evlog_reader_last_seq(a.reader);
    if (o->upto > 0 && o->upto < hi)
      hi = o->upto;
    bool full = rebuild || a.rebuild_pending || strcmp(a.plan->mode, "replace") == 0 ||
                !zql_plan_mergeable(a.plan);
    if (!rebuild && !a.rebuild_pending && hi <= a.wm.seq) {
      rc = sweep_only(&a); /* nothing new; retention still applies (R19) */
      agg_free(&a);
      rep->seconds = mono() - t0;
      return rc;
    }
    r.run = a.wm.run + 1;
    /* R14: a plan that cannot merge may still recompute only the buckets of the new
     * events (not on its first run: that is all of them) */
    bool dirty = full && !rebuild && !a.rebuild_pending && a.wm.seq > 0 &&
                 strcmp(a.plan->mode, "replace") != 0 && zql_plan_recompute_dirty(a.plan);
    snprintf(r.kind, sizeof r.kind, "%s",
             rebuild || a.rebuild_pending ? "rebuild"
             : dirty                      ? "dirty"
             : full                       ? "full"
                                          : "incremental");
    r.lo = full && !dirty ? 0 : a.wm.seq;
    r.hi = hi;
    r.started = zql_wall_ms();
    snprintf(r.status, sizeof r.status, "started");
    wm_t w = a.wm;
    w.run = r.run;
    rc = begin_run(&a, &r, &w);
    if (rc) {
      agg_free(&a);
      return rc;
    }
    a.wm.run = r.run;
    crash_point("after-start");
  }
  rep->run = r.run;
  snprintf(rep->kind, sizeof rep->kind, "%s", r.kind);
  rep->lo = r.lo;
  rep->hi = r.hi;
  if (strcmp(r.kind, "incremental") == 0)
    rc = strcmp(a.plan->mode, "upsert") == 0 ? run_upsert(&a, &r) : run_incremental(&a, &r);
  else if (strcmp(r.kind, "dirty") == 0)
    rc = run_dirty(&a, &r);
  else
    rc = run_full(&a, &r);
  if (rc && rc != ZQL_E_NOMEM && rc != ZQL_E_IO)
    record_failure(&a, &r, NULL);
  agg_free(&a);
  rep->seconds = mono() - t0;
  return rc;
}

/* ==== backfill (R15) ==== */

typedef struct sidesweep {
  const char *agg;
  int64_t from, to;
  zql_strbuf_t ids;
  uint64_t n;
} sidesweep_t;

static int sidecar_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  sidesweep_t *s = arg;
  const char *agg = doc_str(doc, "agg");
  bson_iter_t it, b;
  if (!agg || strcmp(agg, s->agg) != 0 || !bson_iter_init_find(&it, doc, "doc") ||
      !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &b) || !bson_iter_find(&b, "b") ||
      !BSON_ITER_HOLDS_DATE_TIME(&b))
    return 0;
  int64_t t = bson_iter_date_time(&b);
  if (t >= s->from && t < s->to) {
    ids_add(&s->ids, id, idlen);
    s->n++;
  }
  return 0;
}

/* The late partials a sidecar kept for [from, to) are now in the outputs: remove them. */
static int sidecar_clear(agg_t *a, zql_store_txn_t *txn, int64_t from, int64_t to)
{
  if (!a->plan->sidecar)
    return 0;
  sidesweep_t s = {a->name, from, to, ZQL_STRBUF_INIT, 0};
  int rc = zql_store_scan(txn, a->plan->sidecar, NULL, 0, NULL, 0, sidecar_visit, &s, a->err);
  if (!rc)
    rc = ids_delete(txn, a->plan->sidecar, &s.ids, a->err);
  zql_strbuf_release(&s.ids);
  return rc;
}

/* One batch: the buckets of [bs, be) recomputed from the events up to r->hi. */
static int backfill_batch(agg_t *a, runrec_t *r, uint32_t pti, bool by_ts, int64_t bs,
                          int64_t be)
{
  const zql_ptable_t *pt = &a->plan->tables[pti];
  zql_result_t *res = NULL;
  rowset_t rs = {0};
  int rc = execute(a, 0, r->hi, by_ts ? bs : INT64_MIN, by_ts ? be : INT64_MAX, &res);
  if (!rc)
    rc = rowset_build(a, res, &rs);
  zql_store_txn_t *txn = NULL;
  if (!rc)
    rc = zql_store_begin(a->s, true, &txn, a->err);
  for (size_t i = 0; i < rs.n && !rc; i++) {
    const orow_t *o = &rs.v[i];
    const zql_result_table_t *rt = &res->tables[o->t];
    const zql_val_t *row = &rt->vals[o->r * rt->ncols];
    const zql_val_t *b = &row[pt->bucket_col];
    if (b->t != ZQL_V_DATE || b->u.i < bs || b->u.i >= be)
      continue; /* outside this batch (by_ts: events of the range in other buckets) */
    if (past_retention(a, pti, row)) {
      a->rep->deleted++;
      continue;
    }
    zql_outdoc_meta_t m;
    if ((rc = recompute_meta(a, txn, pt->into, o, r->hi, &m)) != 0)
      break;
    rc = put_row(a, txn, pt->into, pti, row, &rt->state[o->r], o->id, o->len, &m);
  }
  if (!rc)
    rc = sidecar_clear(a, txn, bs, be);
  r->done = bs;
  if (!rc)
    rc = run_write(a, txn, r, NULL);
  if (!rc) {
    rc = zql_store_commit(txn, a->err);
    txn = NULL;
  }
  if (txn)
    zql_store_abort(txn);
  rowset_free(&rs);
  zql_result_free(res);
  return rc;
}

/* The one output table with a time bucket key, or UINT32_MAX. */
static uint32_t backfill_table(const zql_plan_t *p)
{
  uint32_t pti = UINT32_MAX, nout = 0;
  for (uint32_t i = 0; i < p->ntables; i++)
    if (is_output(&p->tables[i])) {
      nout++;
      pti = i;
    }
  return nout == 1 && p->tables[pti].bucket_col >= 0 ? pti : UINT32_MAX;
}

/* Run (or finish) the backfill of run record r: its buckets below r->done, newest first,
 * one transaction each; then the record is committed. */
static int backfill_continue(agg_t *a, runrec_t *r)
{
  zql_incr_report_t *rep = a->rep;
  rep->run = r->run;
  snprintf(rep->kind, sizeof rep->kind, "backfill");
  rep->lo = r->lo;
  rep->hi = r->hi;
  uint32_t pti = backfill_table(a->plan);
  if (pti == UINT32_MAX) { /* the definition changed since: nothing to backfill */
    record_failure(a, r, "the aggregate no longer has one time bucket key");
    return 0;
  }
  const zql_bucket_t *bk = &a->bk[pti];
  bool by_ts = zql_plan_bucket_of_timestamp(a->plan, a->plan->tables[pti].bucket);
  bool first_batch = true;
  int rc = 0;
  while (!rc && r->done > r->from) {
    int64_t bs = r->from;
    if (by_ts && (zql_bucket_start(bk, r->done - 1, &bs) != 0 || bs < r->from))
      bs = r->from;
    rc = backfill_batch(a, r, pti, by_ts, bs, r->done);
    if (!rc && first_batch) {
      first_batch = false;
      crash_point("backfill-batch");
    }
  }
  if (!rc) {
    zql_store_txn_t *txn;
    snprintf(r->status, sizeof r->status, "committed");
    if ((rc = zql_store_begin(a->s, true, &txn, a->err)) == 0) {
      if ((rc = run_write(a, txn, r, NULL)) == 0)
        rc = zql_store_commit(txn, a->err);
      else
        zql_store_abort(txn);
    }
  } else if (rc != ZQL_E_NOMEM && rc != ZQL_E_IO) {
    record_failure(a, r, NULL);
  }
  return rc;
}

int zql_incr_backfill(zql_store_t *s, const char *data_dir, const char *name, int64_t t1,
                      int64_t t2, const zql_incr_opts_t *o, zql_incr_report_t *rep,
                      zql_strbuf_t *err)
{
  double t0 = mono();
  zql_pool_warm(opt_threads(o));
  agg_t a;
  int rc = agg_open(&a, s, data_dir, name, o, rep, err);
  if (!rc && a.last.run && strcmp(a.last.status, "started") == 0 &&
      strcmp(a.last.kind, "backfill") != 0) {
    zql_strbuf_addf(err, "run %" PRId64 " of %s is unfinished: `zql agg run %s` completes it "
                    "first", a.last.run, name, name);
    rc = ZQL_E_USAGE;
  }
  uint32_t pti = rc ? UINT32_MAX : backfill_table(a.plan);
  if (!rc && pti == UINT32_MAX) {
    zql_strbuf_addf(err, "%s has no time bucket key (bucket(...) in group by): a backfill "
                    "recomputes buckets; `zql agg rebuild %s` recomputes everything", name, name);
    rc = ZQL_E_USAGE;
  }
  if (!rc && !zql_plan_mergeable(a.plan)) {
    zql_strbuf_addf(err, "%s reads events across buckets (per stages, sessions, rank, having "
                    "or from agg): `zql agg rebuild %s` recomputes it", name, name);
    rc = ZQL_E_USAGE;
  }
  if (!rc && t2 <= t1) {
    zql_strbuf_addf(err, "--to must be after --from");
    rc = ZQL_E_USAGE;
  }
  if (rc) {
    agg_free(&a);
    return rc;
  }
  runrec_t r = {0};
  const zql_bucket_t *bk = &a.bk[pti];
  if (a.last.run && strcmp(a.last.status, "started") == 0) {
    r = a.last; /* finish the interrupted backfill first, from where it stopped */
    rep->resumed = true;
  } else {
    int64_t from, to;
    if (zql_bucket_start(bk, t1, &from) != 0 || zql_bucket_end(bk, t2 - 1, &to) != 0) {
      zql_strbuf_addf(err, "backfill: the range is outside the representable times");
      agg_free(&a);
      return ZQL_E_USAGE;
    }
    if ((rc = open_log(&a)) != 0) {
      agg_free(&a);
      return rc;
    }
    /* R19: the raw events of the range must still be there */
    int64_t first = zql_evlog_reader_first_seq(a.reader);
    if (first > 1 && zql_evlog_reader_nsegments(a.reader) > 0) {
      int64_t oldest = zql_evlog_reader_segment(a.reader, 0)->min_ts;
      if (from < oldest) {
        zql_strbuf_addf(err, "backfill of %s: the range starts before the oldest retained "
                        "event; the log's retention removed events up to _seq %" PRId64,
                        name, first - 1);
        agg_free(&a);
        return ZQL_E_RANGE_RETAINED;
      }
    }
    r.run = a.wm.run + 1;
    snprintf(r.kind, sizeof r.kind, "backfill");
    r.lo = 0;
    r.hi = a.wm.seq; /* never past the watermark: later events belong to the next run */
    r.from = from;
    r.to = to;
    r.done = to;
    r.started = zql_wall_ms();
    snprintf(r.status, sizeof r.status, "started");
    wm_t w = a.wm;
    w.run = r.run;
    if ((rc = begin_run(&a, &r, &w)) != 0) {
      agg_free(&a);
      return rc;
    }
    a.wm.run = r.run;
  }
  rc = backfill_continue(&a, &r);
  agg_free(&a);
  rep->seconds = mono() - t0;
  return rc;
}

/* ==== definitions ==== */

/* What decides the outputs, as text: the output collections, keys, time buckets, zones
 * and the key template (R10: a change needs a rebuild). */
static void identity_text(const zql_plan_t *p, zql_strbuf_t *sb)
{
  for (uint32_t i = 0; i < p->ntables; i++) {
    const zql_ptable_t *t = &p->tables[i];
    if (!is_output(t))
      continue;
    zql_strbuf_addf(sb, "%sinto %s keys (", i ? "; " : "", t->into);
    for (uint32_t c = 0, k = 0; c < t->ncols; c++)
      if (t->cols[c].is_key)
        zql_strbuf_addf(sb, "%s%s", k++ ? ", " : "", t->cols[c].name);
    zql_strbuf_adds(sb, ")");
  }
  for (uint32_t i = 0; i < p->nbuckets; i++) {
    const zql_pbucket_t *b = &p->buckets[i];
    zql_strbuf_addf(sb, "; bucket every %" PRId64 " %s tz %s", b->every, b->unit, b->tz);
    if (b->week_start)
      zql_strbuf_addf(sb, " week starts %s", b->week_start);
    if (b->origin)
      zql_strbuf_addf(sb, " origin %s", b->origin);
  }
  if (p->key_doc)
    zql_strbuf_adds(sb, "; key doc");
  else if (p->key_template)
    zql_strbuf_addf(sb, "; key \"%s\"", p->key_template);
  zql_strbuf_addf(sb, "; mode %s", p->mode);
}

/* A hash of the plan without what does not change outputs (schedule, settle, lateness,
 * late policy, retention, partitions, EXPLAIN texts, source hash). */
static int fingerprint(const zql_plan_t *p, int64_t *out)
{
  zql_plan_t c = *p; /* shallow: only scalar fields are changed below */
  c.source_hash = 0;
  c.schedule = NULL;
  c.settle_ms = 0;
  c.lateness_ms = 0;
  c.late = "merge";
  c.sidecar = NULL;
  c.retain_ms = -1;
  c.partitions = 1;
  c.logical = NULL;
  bson_t d = BSON_INITIALIZER;
  int rc = zql_plan_to_bson(&c, &d);
  if (!rc)
    *out = (int64_t)XXH3_64bits(bson_get_data(&d), d.len);
  bson_destroy(&d);
  return rc;
}

/* Another stored aggregate writing one of p's output collections? */
typedef struct clash {
  const zql_plan_t *p;
  zql_strbuf_t *msg;
} clash_t;

static int clash_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  clash_t *c = arg;
  if (idlen == strlen(c->p->name) && memcmp(id, c->p->name, idlen) == 0)
    return 0;
  bson_iter_t it, a;
  if (!bson_iter_init_find(&it, doc, "into") || !BSON_ITER_HOLDS_ARRAY(&it) ||
      !bson_iter_recurse(&it, &a))
    return 0;
  while (bson_iter_next(&a)) {
    const char *coll = BSON_ITER_HOLDS_UTF8(&a) ? bson_iter_utf8(&a, NULL) : "";
    for (uint32_t i = 0; i < c->p->ntables; i++)
      if (is_output(&c->p->tables[i]) && strcmp(c->p->tables[i].into, coll) == 0) {
        zql_strbuf_addf(c->msg, "%s: its output collection \"%s\" is already the output of "
                        "%.*s; give it another `into`", c->p->name, coll, (int)idlen,
                        (const char *)id);
        return 1;
      }
  }
  return 0;
}

int zql_incr_define(zql_store_t *s, const zql_plan_t *p, const char *file, const char *source,
                    size_t len, bool rebuild, zql_def_status_t *status, zql_strbuf_t *err)
{
  if (!p->incremental || p->is_query) {
    zql_strbuf_addf(err, "%s: not an aggregate compiled for the results store", p->name);
    return ZQL_E_USAGE;
  }
  zql_strbuf_t ident = ZQL_STRBUF_INIT;
  identity_text(p, &ident);
  int64_t fp = 0;
  int rc = ident.oom ? ZQL_E_NOMEM : fingerprint(p, &fp);
  int64_t hash = (int64_t)XXH3_64bits(source, len);
  zql_store_txn_t *t = NULL;
  if (!rc)
    rc = zql_store_begin(s, true, &t, err);
  zql_catentry_t e;
  bson_t old;
  int g = rc ? rc : zql_catalog_get(t, p->name, &e, &old, err);
  if (g < 0)
    rc = g;
  int32_t version = 1;
  int64_t created = zql_wall_ms();
  bool pending = false;
  clash_t cl = {p, err};
  if (!rc) {
    int sc = zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, clash_visit, &cl, err);
    rc = sc == 1 ? ZQL_E_USAGE : sc < 0 ? sc : 0;
  }
  if (!rc && g == 0) {
    version = e.version;
    created = e.created;
    bson_iter_t it;
    pending = bson_iter_init_find(&it, &old, "rebuild") && BSON_ITER_HOLDS_BOOL(&it) &&
              bson_iter_bool(&it);
    bool same_ident = strcmp(e.identity, ident.buf) == 0;
    if (e.source_hash == hash && e.fingerprint == fp && same_ident && !rebuild) {
      *status = ZQL_DEF_SAME;
      zql_store_abort(t);
      zql_strbuf_release(&ident);
      return 0;
    }
    if ((!same_ident || e.fingerprint != fp) && !rebuild) {
      if (!same_ident)
        zql_strbuf_addf(err, "%s: its identity changed, from\n    %s\nto\n    %s\nthe stored "
                        "outputs would mix both: `zql agg add --rebuild %s` rebuilds them",
                        p->name, e.identity, ident.buf, file);
      else
        zql_strbuf_addf(err, "%s: what it computes changed; the stored outputs would mix "
                        "both definitions: `zql agg add --rebuild %s` rebuilds them", p->name,
                        file);
      rc = ZQL_E_AGG_CHANGED;
    } else {
      if (!same_ident || e.fingerprint != fp || rebuild)
        pending = true;
      version++;
    }
  }
  if (!rc) {
    bson_t d = BSON_INITIALIZER, pd, arr;
    bson_append_utf8(&d, "_id", 3, p->name, -1);
    bson_append_utf8(&d, "name", 4, p->name, -1);
    bson_append_utf8(&d, "file", 4, file, -1);
    bson_append_utf8(&d, "source", 6, source, (int)len);
    bson_append_int64(&d, "source_hash", -1, hash);
    bson_init(&pd);
    rc = zql_plan_to_bson(p, &pd);
    bson_append_document(&d, "plan", 4, &pd);
    bson_destroy(&pd);
    bson_append_int64(&d, "fingerprint", -1, fp);
    bson_append_utf8(&d, "identity", -1, ident.buf, (int)ident.len);
    bson_append_int32(&d, "version", -1, version);
    bson_append_array_begin(&d, "into", 4, &arr);
    for (uint32_t i = 0, k = 0; i < p->ntables; i++)
      if (is_output(&p->tables[i])) {
        char kb[16];
        snprintf(kb, sizeof kb, "%" PRIu32, k++);
        bson_append_utf8(&arr, kb, -1, p->tables[i].into, -1);
      }
    bson_append_array_end(&d, &arr);
    bson_append_utf8(&d, "mode", 4, p->mode, -1);
    if (p->source_agg)
      bson_append_utf8(&d, "reads", 5, p->source_agg, -1);
    if (p->schedule)
      bson_append_utf8(&d, "schedule", -1, p->schedule, -1);
    bson_append_date_time(&d, "created", 7, created);
    bson_append_date_time(&d, "updated", 7, zql_wall_ms());
    if (pending)
      bson_append_bool(&d, "rebuild", 7, true);
    if (!rc)
      rc = zql_store_put(t, ZQL_CAT_COLL, p->name, strlen(p->name), &d, err);
    bson_destroy(&d);
  }
  if (!rc) {
    rc = zql_store_commit(t, err);
    t = NULL;
    *status = g == ZQL_STORE_NOTFOUND ? ZQL_DEF_NEW : pending ? ZQL_DEF_REBUILD : ZQL_DEF_UPDATED;
  }
  if (t)
    zql_store_abort(t);
  zql_strbuf_release(&ident);
  return rc;
}

/* ==== drop ==== */

typedef struct deps {
  const char *name;
  zql_strbuf_t *out;
} deps_t;

static int deps_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  deps_t *d = arg;
  const char *reads = doc_str(doc, "reads");
  if (reads && strcmp(reads, d->name) == 0)
    zql_strbuf_addf(d->out, "%s%.*s", d->out->len ? ", " : "", (int)idlen, (const char *)id);
  return 0;
}

int zql_incr_dependents(zql_store_txn_t *t, const char *name, zql_strbuf_t *out,
                        zql_strbuf_t *err)
{
  deps_t d = {name, out};
  return zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, deps_visit, &d, err);
}

typedef struct prefix_ids {
  zql_strbuf_t ids;
} prefix_ids_t;

static int collect_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  prefix_ids_t *p = arg;
  (void)doc;
  ids_add(&p->ids, id, idlen);
  return 0;
}

typedef struct shadows {
  const zql_plan_t *p;
  const char *ecoll;
  zql_strbuf_t names; /* NUL-separated */
} shadows_t;

static void shadow_visit(void *arg, const char *coll)
{
  shadows_t *s = arg;
  const char *r = strstr(coll, ".__rebuild_");
  if (!r)
    return;
  size_t base = (size_t)(r - coll);
  bool mine = strlen(s->ecoll) == base && memcmp(s->ecoll, coll, base) == 0;
  for (uint32_t i = 0; i < s->p->ntables && !mine; i++)
    if (is_output(&s->p->tables[i]) && strlen(s->p->tables[i].into) == base &&
        memcmp(s->p->tables[i].into, coll, base) == 0)
      mine = true;
  if (mine)
    zql_strbuf_add(&s->names, coll, strlen(coll) + 1);
}

int zql_incr_drop(zql_store_t *s, const char *data_dir, const char *name, zql_strbuf_t *err)
{
  zql_incr_opts_t o;
  zql_incr_opts_init(&o);
  zql_incr_report_t rep;
  agg_t a;
  int rc = agg_open(&a, s, data_dir, name, &o, &rep, err);
  zql_store_txn_t *t = NULL;
  if (!rc)
    rc = zql_store_begin(s, true, &t, err);
  zql_strbuf_t deps = ZQL_STRBUF_INIT;
  if (!rc)
    rc = zql_incr_dependents(t, name, &deps, err);
  if (!rc && deps.len) {
    zql_strbuf_addf(err, "%s is read by %s (from agg %s): drop those first", name, deps.buf,
                    name);
    rc = ZQL_E_USAGE;
  }
  char ecoll[300];
  errors_coll(ecoll, sizeof ecoll, name);
  shadows_t sh = {a.plan, ecoll, ZQL_STRBUF_INIT};
  if (!rc)
    rc = zql_store_collections(t, shadow_visit, &sh, err);
  for (size_t off = 0; !rc && off < sh.names.len; off += strlen(sh.names.buf + off) + 1) {
    rc = zql_store_drop(t, sh.names.buf + off, err);
    rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
  }
  for (uint32_t i = 0; !rc && i < a.plan->ntables; i++)
    if (is_output(&a.plan->tables[i])) {
      rc = zql_store_drop(t, a.plan->tables[i].into, err);
      rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
    }
  if (!rc) {
    rc = zql_store_drop(t, ecoll, err);
    rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
  }
  prefix_ids_t runs = {ZQL_STRBUF_INIT};
  if (!rc)
    rc = zql_store_prefix(t, ZQL_RUNS_COLL, name, strlen(name) + 1, collect_visit, &runs, err);
  if (!rc)
    rc = ids_delete(t, ZQL_RUNS_COLL, &runs.ids, err);
  if (!rc) {
    rc = zql_store_del(t, ZQL_WM_COLL, name, strlen(name), err);
    rc = rc == ZQL_STORE_NOTFOUND ? 0 : rc;
  }
  if (!rc)
    rc = zql_store_del(t, ZQL_CAT_COLL, name, strlen(name), err);
  if (!rc) {
    rc = zql_store_commit(t, err);
    t = NULL;
  }
  if (t)
    zql_store_abort(t);
  zql_strbuf_release(&runs.ids);
  zql_strbuf_release(&sh.names);
  zql_strbuf_release(&deps);
  agg_free(&a); /* the lock file stays: a waiter holds it open, and unlinking it would let
                   a later run lock a new file while the waiter locks the old one */
  return rc;
}
