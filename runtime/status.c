#include "runtime/base/zql_common.h"
/*
 * status.c -- what `zql status` and zqld's GET /api/v1/status report about the event log
 * and the stored aggregates (runtime services; issue 6, docs/zqld.md "Status").
 *
 * The daemon builds one BSON document -- its own section (ingest rates, queue, scheduler
 * state) plus the parts here, which need only the data directory: the log's size and
 * _seq range, and per stored aggregate its watermark, lag behind the log, last run and
 * ERROR-row count, read from the results store's catalog ($catalog, $watermarks, $runs,
 * zagg.NAME._errors; runtime/catalog.h). `zql status --data DIR` builds the same parts
 * without a daemon. The HTTP service sends the document as relaxed extended JSON;
 * zql_status_print renders either as text.
 */

#include "runtime/status.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/catalog.h"

/* {==== the log ====} */

int zql_status_log(const char *data_dir, bson_t *parent, zql_strbuf_t *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/events", data_dir);
  DIR *d = opendir(path);
  int64_t segs = 0, bytes = 0, first = 0, open_first = 0;
  if (!d && errno != ENOENT) {
    zql_strbuf_addf(err, "cannot read '%s': %s", path, strerror(errno));
    return ZQL_E_IO;
  }
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    bool seg = l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0;
    bool open = l > 5 && strcmp(de->d_name + l - 5, ".open") == 0;
    if (!seg && !open)
      continue;
    char fp[4400];
    struct stat st;
    snprintf(fp, sizeof fp, "%s/%s", path, de->d_name);
    if (stat(fp, &st) != 0)
      continue; /* removed by retention meanwhile */
    segs++;
    bytes += (int64_t)st.st_size;
    int64_t f = strtoll(de->d_name, NULL, 10);
    if (f > 0 && (first == 0 || f < first))
      first = f;
    if (open)
      open_first = f;
  }
  if (d)
    closedir(d);
  bson_t lg;
  bson_append_document_begin(parent, "log", 3, &lg);
  bson_append_int64(&lg, "segments", 8, segs);
  bson_append_int64(&lg, "bytes", 5, bytes);
  bson_append_int64(&lg, "first_seq", 9, first);
  bson_append_int64(&lg, "open_segment_first_seq", -1, open_first);
  bson_append_document_end(parent, &lg);
  return 0;
}

/* {==== the aggregates ====} */

typedef struct names {
  char **v;
  size_t n, cap;
  bool oom;
} names_t;

static int name_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)doc;
  names_t *nm = arg;
  if (nm->n == nm->cap) {
    size_t nc = nm->cap ? nm->cap * 2 : 16;
    char **v = zql_reallocarray(nm->v, nc, sizeof *v);
    if (!v) {
      nm->oom = true;
      return 1;
    }
    nm->v = v;
    nm->cap = nc;
  }
  if (!(nm->v[nm->n] = zql_strndup(id, idlen))) {
    nm->oom = true;
    return 1;
  }
  nm->n++;
  return 0;
}

static int64_t get_int(const bson_t *d, const char *key, int64_t dflt)
{
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, key) &&
      (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it) ||
       BSON_ITER_HOLDS_DATE_TIME(&it)))
    return BSON_ITER_HOLDS_DATE_TIME(&it) ? bson_iter_date_time(&it) : bson_iter_as_int64(&it);
  return dflt;
}

static const char *get_str(const bson_t *d, const char *key)
{
  bson_iter_t it;
  return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_UTF8(&it)
             ? bson_iter_utf8(&it, NULL)
             : NULL;
}

static int sum_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)id;
  (void)idlen;
  *(int64_t *)arg += get_int(doc, "n", 0);
  return 0;
}

/* One aggregate's document. */
static int agg_doc(zql_store_txn_t *t, const char *name, int64_t log_last, bson_t *doc,
                   zql_strbuf_t *err)
{
  zql_catentry_t e;
  bson_t cat;
  int rc = zql_catalog_get(t, name, &e, &cat, err);
  if (rc)
    return rc < 0 ? rc : 0;
  bson_append_utf8(doc, "name", 4, name, -1);
  bson_append_int32(doc, "version", 7, e.version);
  const char *mode = get_str(&cat, "mode");
  if (mode)
    bson_append_utf8(doc, "mode", 4, mode, -1);
  bson_iter_t it;
  if (bson_iter_init_find(&it, &cat, "into") && BSON_ITER_HOLDS_ARRAY(&it))
    bson_append_iter(doc, "into", 4, &it);
  const char *sched = get_str(&cat, "schedule"); /* the clause, as the catalog keeps it */
  if (sched)
    bson_append_utf8(doc, "schedule_clause", -1, sched, -1);
  bson_t wm;
  int64_t seq = 0, run = 0;
  if (zql_store_get(t, ZQL_WM_COLL, name, strlen(name), &wm, err) == 0) {
    seq = get_int(&wm, "seq", 0);
    run = get_int(&wm, "run", 0);
    if (bson_iter_init_find(&it, &wm, "et") && BSON_ITER_HOLDS_INT64(&it))
      bson_append_date_time(doc, "max_event_time", -1, bson_iter_int64(&it));
  }
  bson_append_int64(doc, "watermark", 9, seq);
  bson_append_int64(doc, "lag", 3, log_last > seq ? log_last - seq : 0);
  bson_append_int64(doc, "runs", 4, run);
  if (run > 0) {
    size_t nl = strlen(name);
    uint8_t key[300];
    if (nl + 9 <= sizeof key) {
      memcpy(key, name, nl);
      key[nl] = 0;
      for (int i = 0; i < 8; i++)
        key[nl + 1 + i] = (uint8_t)((uint64_t)run >> (56 - 8 * i));
      bson_t rr;
      if (zql_store_get(t, ZQL_RUNS_COLL, key, nl + 9, &rr, err) == 0) {
        bson_t lr;
        bson_append_document_begin(doc, "last_run", 8, &lr);
        bson_append_int64(&lr, "run", 3, run);
        const char *k = get_str(&rr, "kind"), *st = get_str(&rr, "status"),
                   *er = get_str(&rr, "error");
        if (k)
          bson_append_utf8(&lr, "kind", 4, k, -1);
        if (st)
          bson_append_utf8(&lr, "status", 6, st, -1);
        bson_append_int64(&lr, "lo", 2, get_int(&rr, "lo", 0));
        bson_append_int64(&lr, "hi", 2, get_int(&rr, "hi", 0));
        int64_t s0 = get_int(&rr, "started", 0), s1 = get_int(&rr, "finished", 0);
        if (s0)
          bson_append_date_time(&lr, "started", 7, s0);
        if (s1) {
          bson_append_date_time(&lr, "finished", 8, s1);
          bson_append_double(&lr, "seconds", 7, (double)(s1 - s0) / 1000.0);
        }
        bson_t counts;
        if (bson_iter_init_find(&it, &rr, "counts") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
          uint32_t cl;
          const uint8_t *cd;
          bson_iter_document(&it, &cl, &cd);
          if (bson_init_static(&counts, cd, cl))
            bson_append_int64(&lr, "events", 6, get_int(&counts, "events", 0));
        }
        if (er)
          bson_append_utf8(&lr, "error", 5, er, -1);
        bson_append_document_end(doc, &lr);
      }
    }
  }
  char ecoll[300];
  snprintf(ecoll, sizeof ecoll, "zagg.%s._errors", name);
  int64_t nerr = 0;
  if ((rc = zql_store_scan(t, ecoll, NULL, 0, NULL, 0, sum_visit, &nerr, err)) < 0)
    return rc;
  bson_append_int64(doc, "error_rows", 10, nerr);
  return 0;
}

int zql_status_aggs(zql_store_t *s, int64_t log_last_seq, bson_t *parent, zql_status_agg_fn fn,
                    void *arg, zql_strbuf_t *err)
{
  zql_store_txn_t *t;
  int rc = zql_store_begin(s, false, &t, err);
  if (rc)
    return rc;
  names_t nm = {0};
  rc = zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, name_visit, &nm, err);
  if (nm.oom)
    rc = ZQL_E_NOMEM;
  bson_t arr;
  bson_append_array_begin(parent, "aggregates", 10, &arr);
  for (size_t i = 0; i < nm.n && rc >= 0; i++) {
    char ix[16];
    const char *key;
    bson_uint32_to_string((uint32_t)i, &key, ix, sizeof ix);
    bson_t doc;
    bson_append_document_begin(&arr, key, -1, &doc);
    rc = agg_doc(t, nm.v[i], log_last_seq, &doc, err);
    if (rc >= 0 && fn)
      fn(arg, nm.v[i], &doc);
    bson_append_document_end(&arr, &doc);
  }
  bson_append_array_end(parent, &arr);
  zql_store_abort(t);
  for (size_t i = 0; i < nm.n; i++)
    zql_free(nm.v[i]);
  zql_free(nm.v);
  return rc < 0 ? rc : 0;
}

/* {==== printing ====} */

static void fmt_count(char *buf, size_t n, int64_t v)
{
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%" PRId64, v < 0 ? -v : v);
  size_t l = strlen(tmp), o = 0;
  if (v < 0 && o + 1 < n)
    buf[o++] = '-';
  for (size_t i = 0; i < l && o + 2 < n; i++) {
    if (i && (l - i) % 3 == 0)
      buf[o++] = ',';
    buf[o++] = tmp[i];
  }
  buf[o] = 0;
}

static bool sub(const bson_t *d, const char *key, bson_t *out)
{
  bson_iter_t it;
  uint32_t l;
  const uint8_t *p;
  if (!bson_iter_init_find(&it, d, key) ||
      !(BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)))
    return false;
  if (BSON_ITER_HOLDS_DOCUMENT(&it))
    bson_iter_document(&it, &l, &p);
  else
    bson_iter_array(&it, &l, &p);
  return bson_init_static(out, p, l);
}

/* The aggregate document the iterator is at (an element of "aggregates"), in *d. */
static bool agg_entry(const bson_iter_t *it, bson_t *d)
{
  uint32_t l;
  const uint8_t *p;
  if (!BSON_ITER_HOLDS_DOCUMENT(it))
    return false;
  bson_iter_document(it, &l, &p);
  return bson_init_static(d, p, l);
}

static const char *agg_name(const bson_t *d)
{
  const char *n = get_str(d, "name");
  return n ? n : "?";
}

/* Its schedule as written after `schedule`, or "on demand". */
static const char *agg_sched(const bson_t *d)
{
  const char *s = get_str(d, "schedule");
  if (!s)
    s = get_str(d, "schedule_clause");
  if (s && strncmp(s, "schedule ", 9) == 0)
    s += 9;
  return s ? s : "on demand";
}

static double get_num(const bson_t *d, const char *key)
{
  bson_iter_t it;
  return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_NUMBER(&it)
             ? bson_iter_as_double(&it)
             : 0.0;
}

void zql_status_print(const bson_t *st, FILE *f)
{
  bson_t z, in, lg, aggs;
  char a[32], b[32], c[32];
  if (sub(st, "zqld", &z)) {
    fprintf(f, "zqld %s, pid %" PRId64 ", up %.0f s\n", get_str(&z, "version") ? get_str(&z, "version") : "?",
            get_int(&z, "pid", 0), get_num(&z, "uptime_s"));
  } else {
    fputs("zqld: not asked (read from the data directory)\n", f);
  }
  if (sub(st, "ingest", &in)) {
    bson_t tot;
    if (sub(&in, "total", &tot)) {
      fmt_count(a, sizeof a, get_int(&tot, "received", 0));
      fmt_count(b, sizeof b, get_int(&tot, "accepted", 0));
      fmt_count(c, sizeof c, get_int(&tot, "rejected", 0));
      fprintf(f, "ingest: %.0f events/s (last 10 s); received %s, accepted %s, rejected %s\n",
              get_num(&in, "rate_10s"), a, b, c);
    }
    fmt_count(a, sizeof a, get_int(&in, "last_seq", 0));
    fmt_count(b, sizeof b, get_int(&in, "durable_seq", 0));
    fprintf(f, "        queue %" PRId64 " events; last _seq %s, durable %s; dead letters %" PRId64 "\n",
            get_int(&in, "queue_events", 0), a, b, get_int(&in, "deadletter_lines", 0));
  }
  if (sub(st, "log", &lg)) {
    fmt_count(a, sizeof a, get_int(&lg, "bytes", 0));
    fprintf(f, "log: %" PRId64 " segments, %s bytes, from _seq %" PRId64 "\n",
            get_int(&lg, "segments", 0), a, get_int(&lg, "first_seq", 0));
  }
  if (!sub(st, "aggregates", &aggs))
    return;
  /* the name and schedule columns are as wide as their longest entry (24, 22 at least) */
  int nw = 24, sw = 22;
  bson_iter_t it;
  bson_t d, lr;
  if (bson_iter_init(&it, &aggs))
    while (bson_iter_next(&it))
      if (agg_entry(&it, &d)) {
        int n = (int)strlen(agg_name(&d)), s = (int)strlen(agg_sched(&d));
        nw = n > nw && n < 256 ? n : nw;
        sw = s > sw && s < 256 ? s : sw;
      }
  fprintf(f, "%-*s %-*s %12s %10s  %s\n", nw, "aggregate", sw, "schedule", "watermark", "lag",
          "last run");
  if (!bson_iter_init(&it, &aggs))
    return;
  while (bson_iter_next(&it)) {
    if (!agg_entry(&it, &d))
      continue;
    fmt_count(a, sizeof a, get_int(&d, "watermark", 0));
    fmt_count(b, sizeof b, get_int(&d, "lag", 0));
    fprintf(f, "%-*s %-*s %12s %10s  ", nw, agg_name(&d), sw, agg_sched(&d), a, b);
    if (sub(&d, "last_run", &lr)) {
      const char *le = get_str(&lr, "error");
      fprintf(f, "#%" PRId64 " %s %s, %.3f s", get_int(&lr, "run", 0),
              get_str(&lr, "kind") ? get_str(&lr, "kind") : "?",
              get_str(&lr, "status") ? get_str(&lr, "status") : "?", get_num(&lr, "seconds"));
      if (le)
        fprintf(f, ": %s", le);
    } else {
      fputs("never run", f);
    }
    bson_iter_t r;
    if (bson_iter_init_find(&r, &d, "running") && BSON_ITER_HOLDS_BOOL(&r) && bson_iter_bool(&r))
      fputs(" (running)", f);
    int64_t fails = get_int(&d, "failures", 0), erows = get_int(&d, "error_rows", 0);
    if (fails)
      fprintf(f, " (%" PRId64 " failures in a row: %s)", fails,
              get_str(&d, "last_error") ? get_str(&d, "last_error") : "?");
    if (erows)
      fprintf(f, " [%" PRId64 " ERROR rows]", erows);
    fputc('\n', f);
  }
}
