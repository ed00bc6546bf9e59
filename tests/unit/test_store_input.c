/*
 * test_store_input.c -- unit tests of `from agg NAME` over the results store
 * (runtime/store_input.c): stored output documents as executor rows, and the catalog
 * sources of the names a program reads.
 *
 * Each test gets a fresh data directory under /tmp (mkdtemp) with a results store, and
 * writes catalog entries and output documents by hand, the way `zql agg add` and `zql agg
 * run` lay them out (runtime/catalog.h, runtime/outdoc.h). Covered:
 *  - the rows: {k fields, value fields, __state} byte for byte, bookkeeping fields left
 *    out, __state only when asked for, _seq = ordinal in id order, timestamp 0, split,
 *    chunks and time ranges, a missing collection, malformed documents, one snapshot per
 *    transaction, out-of-memory at every allocation;
 *  - the catalog sources: the name asked for and only what it needs from its source,
 *    transitively through another stored source, one file for names of one source, an
 *    unknown name left to the analyzer (E3019 at its place), names that collide with the
 *    user's renamed in the catalog source, a stored source that no longer parses, corrupt
 *    entries, warnings of catalog sources dropped;
 *  - end to end: a daily aggregate run over events, stored with zql_outdoc_build, rolled
 *    up by a `from agg` query with merge() gives exactly the direct monthly query (R17),
 *    and `from agg NAME` alone gives its stored rows (resolved point 6).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <unistd.h>

#include "exec/output.h"
#include "exec/zql_exec.h"
#include "parser/zql_parse.h"
#include "planner/zql_plan.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/catalog.h"
#include "runtime/outdoc.h"
#include "runtime/store.h"
#include "runtime/store_input.h"

/* {==== fixture and helpers ============================================================== */

typedef struct {
  char root[64];  /* the mkdtemp directory */
  char data[96];  /* root/data: the data directory (created by the store) */
  zql_store_t *s;
  zql_store_txn_t *open[8]; /* transactions begun and not ended (a failed test's) */
} fix_t;

static int setup(void **state)
{
  fix_t *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  strcpy(f->root, "/tmp/zql-sinput-XXXXXX");
  if (!mkdtemp(f->root)) {
    free(f);
    return -1;
  }
  snprintf(f->data, sizeof f->data, "%s/data", f->root);
  if (zql_store_open_lmdb(f->data, &f->s, NULL) != 0) {
    rmdir(f->root);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fix_t *f = *state;
  zql_alloc_fail_after(-1);
  for (int i = 0; i < 8; i++)
    if (f->open[i])
      zql_store_abort(f->open[i]);
  zql_store_close(f->s);
  char p[160];
  snprintf(p, sizeof p, "%s/results/data.mdb", f->data);
  unlink(p);
  snprintf(p, sizeof p, "%s/results/lock.mdb", f->data);
  unlink(p);
  snprintf(p, sizeof p, "%s/results", f->data);
  rmdir(p);
  rmdir(f->data);
  rmdir(f->root);
  free(f);
  return 0;
}

static fix_t *cur_fix; /* the running test's fixture */

static void forget(zql_store_txn_t *t)
{
  for (int i = 0; i < 8; i++)
    if (cur_fix->open[i] == t)
      cur_fix->open[i] = NULL;
}

static zql_store_txn_t *begin(fix_t *f, bool write)
{
  zql_store_txn_t *t = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_store_begin(f->s, write, &t, &err) != 0)
    fail_msg("begin: %s", err.buf);
  zql_strbuf_release(&err);
  cur_fix = f;
  for (int i = 0; i < 8; i++)
    if (!f->open[i]) {
      f->open[i] = t;
      break;
    }
  return t;
}

static void commit(zql_store_txn_t *t)
{
  forget(t);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_store_commit(t, &err) != 0)
    fail_msg("commit: %s", err.buf);
  zql_strbuf_release(&err);
}

static void end(zql_store_txn_t *t)
{
  forget(t);
  zql_store_abort(t);
}

static void put(zql_store_txn_t *t, const char *coll, const char *id, const bson_t *doc)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_store_put(t, coll, id, strlen(id), doc, &err) != 0)
    fail_msg("put: %s", err.buf);
  zql_strbuf_release(&err);
}

static bson_t *json(const char *text)
{
  bson_error_t be;
  bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &be);
  if (!b)
    fail_msg("json: %s: %s", be.message, text);
  return b;
}

static void put_json(zql_store_txn_t *t, const char *coll, const char *id, const char *text)
{
  bson_t *b = json(text);
  put(t, coll, id, b);
  bson_destroy(b);
}

/* The canonical extended JSON of a row document. */
static char *row_json(const zql_event_t *ev)
{
  bson_t b;
  assert_true(bson_init_static(&b, ev->doc, ev->len));
  assert_true(bson_validate(&b, BSON_VALIDATE_NONE, NULL));
  return bson_as_canonical_extended_json(&b, NULL);
}

static void assert_json_eq(const char *got, const char *want_json)
{
  bson_t *w = json(want_json);
  char *want = bson_as_canonical_extended_json(w, NULL);
  if (strcmp(got, want) != 0)
    fail_msg("got  %s\nwant %s", got, want);
  bson_free(want);
  bson_destroy(w);
}

/* Every row of an input, in order, through cursors over the whole range. */
static uint64_t read_all(const zql_input_t *in, zql_event_t *ev, size_t max)
{
  void *cur;
  assert_int_equal(in->open(in->arg, in->lo, in->hi, INT64_MIN, INT64_MAX, &cur, NULL), 0);
  uint64_t n = 0;
  int got;
  while ((got = in->next(cur, ev + n, max - n, NULL)) > 0)
    n += (uint64_t)got;
  assert_int_equal(got, 0);
  in->close(cur);
  return n;
}

/* }==== */

/* {==== the input ========================================================================= */

static void put_outputs(fix_t *f)
{
  zql_store_txn_t *t = begin(f, true);
  put_json(t, "zagg.daily", "p2/2024-01-01",
           "{\"_id\": \"p2/2024-01-01\", \"value\": {\"views\": 3, \"users\": 2},"
           " \"state\": {\"views\": {\"k\": \"count\", \"n\": 3},"
           "            \"#2\": {\"k\": \"count\", \"n\": 3}},"
           " \"k\": {\"project\": \"p2\", \"day\": {\"$date\": \"2024-01-01T00:00:00Z\"}},"
           " \"b\": {\"$date\": \"2024-01-01T00:00:00Z\"}, \"tz\": \"UTC\","
           " \"_hw\": {\"$numberLong\": \"10\"}, \"_rev\": {\"$numberLong\": \"1\"},"
           " \"_late\": {\"$numberLong\": \"0\"}}");
  put_json(t, "zagg.daily", "p1/2024-01-02",
           "{\"_id\": \"p1/2024-01-02\", \"value\": {\"views\": 5, \"users\": null},"
           " \"state\": {\"views\": {\"k\": \"count\", \"n\": 5}},"
           " \"k\": {\"project\": \"p1\", \"day\": {\"$date\": \"2024-01-02T00:00:00Z\"}},"
           " \"_hw\": {\"$numberLong\": \"10\"}}");
  /* no state (mode merge writes none), no k (an aggregate without keys) */
  put_json(t, "zagg.daily", "_all", "{\"_id\": \"_all\", \"value\": {\"views\": 8}}");
  put_json(t, "zagg.other", "x", "{\"_id\": \"x\", \"value\": {\"v\": 1}, \"k\": {}}");
  commit(t);
}

static void test_rows(void **state)
{
  fix_t *f = *state;
  put_outputs(f);
  zql_store_txn_t *t = begin(f, false);
  zql_input_t in;
  zql_store_input_t *si = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_store_input_new(t, "zagg.daily", ZQL_STORE_INPUT_STATES, &in, &si, &err), 0);
  end(t); /* the rows do not depend on the transaction */
  assert_int_equal(zql_store_input_rows(si), 3);
  assert_int_equal(in.lo, 0);
  assert_int_equal(in.hi, 3);
  zql_event_t ev[8];
  assert_int_equal(read_all(&in, ev, 8), 3);
  uint64_t bytes = 0;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ev[i].seq, i + 1); /* ordinals in id order: "_all" < "p1/..." < "p2/..." */
    assert_int_equal(ev[i].ts, 0);
    bytes += ev[i].len;
  }
  assert_int_equal(in.bytes, bytes);
  char *j = row_json(&ev[0]);
  assert_json_eq(j, "{\"views\": 8}");
  bson_free(j);
  j = row_json(&ev[1]);
  assert_json_eq(j, "{\"project\": \"p1\", \"day\": {\"$date\": \"2024-01-02T00:00:00Z\"},"
                    " \"views\": 5, \"users\": null,"
                    " \"__state\": {\"views\": {\"k\": \"count\", \"n\": 5}}}");
  bson_free(j);
  j = row_json(&ev[2]); /* b, tz, _id and the bookkeeping fields are not columns */
  assert_json_eq(j, "{\"project\": \"p2\", \"day\": {\"$date\": \"2024-01-01T00:00:00Z\"},"
                    " \"views\": 3, \"users\": 2,"
                    " \"__state\": {\"views\": {\"k\": \"count\", \"n\": 3},"
                    " \"#2\": {\"k\": \"count\", \"n\": 3}}}");
  bson_free(j);
  zql_store_input_free(si);

  /* without ZQL_STORE_INPUT_STATES: key fields and final values only */
  t = begin(f, false);
  assert_int_equal(zql_store_input_new(t, "zagg.daily", 0, &in, &si, &err), 0);
  end(t);
  assert_int_equal(read_all(&in, ev, 8), 3);
  j = row_json(&ev[2]);
  assert_json_eq(j, "{\"project\": \"p2\", \"day\": {\"$date\": \"2024-01-01T00:00:00Z\"},"
                    " \"views\": 3, \"users\": 2}");
  bson_free(j);
  zql_store_input_free(si);
  zql_store_input_free(NULL);
  assert_int_equal(err.len, 0);
  zql_strbuf_release(&err);
}

static void test_missing_collection(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, false);
  zql_input_t in;
  zql_store_input_t *si = NULL;
  int rc = zql_store_input_new(t, "zagg.never_run", ZQL_STORE_INPUT_STATES, &in, &si, NULL);
  assert_int_equal(rc, 0);
  end(t);
  assert_int_equal(zql_store_input_rows(si), 0);
  assert_int_equal(in.hi, 0);
  assert_int_equal(in.bytes, 0);
  int64_t bounds[4];
  assert_int_equal(in.split(in.arg, in.lo, in.hi, 3, bounds, NULL), 0);
  zql_event_t ev[2];
  assert_int_equal(read_all(&in, ev, 2), 0);
  zql_store_input_free(si);
}

static void test_split_and_ranges(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  char id[16], doc[64];
  for (int i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "r%02d", i);
    snprintf(doc, sizeof doc, "{\"value\": {\"i\": %d}, \"k\": {\"id\": \"%s\"}}", i, id);
    put_json(t, "zagg.ten", id, doc);
  }
  commit(t);
  t = begin(f, false);
  zql_input_t in;
  zql_store_input_t *si = NULL;
  assert_int_equal(zql_store_input_new(t, "zagg.ten", 0, &in, &si, NULL), 0);
  end(t);
  int64_t b[16];
  assert_int_equal(in.split(in.arg, 0, 10, 3, b, NULL), 3);
  assert_int_equal(b[0], 0);
  assert_int_equal(b[1], 3);
  assert_int_equal(b[2], 6);
  assert_int_equal(b[3], 10);
  assert_int_equal(in.split(in.arg, 0, 10, 15, b, NULL), 10); /* at most one row per chunk */
  assert_int_equal(b[10], 10);
  assert_int_equal(in.split(in.arg, 4, 4, 3, b, NULL), 0);

  /* (lo, hi] = (3, 7]: rows with _seq 4..7, fetched one at a time */
  void *cur;
  zql_event_t ev[4];
  assert_int_equal(in.open(in.arg, 3, 7, INT64_MIN, INT64_MAX, &cur, NULL), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(in.next(cur, &ev[i], 1, NULL), 1);
    assert_int_equal(ev[i].seq, 4 + i);
    bson_t d;
    bson_iter_t it;
    assert_true(bson_init_static(&d, ev[i].doc, ev[i].len));
    assert_true(bson_iter_init_find(&it, &d, "i"));
    assert_int_equal(bson_iter_int32(&it), 3 + i);
  }
  assert_int_equal(in.next(cur, ev, 4, NULL), 0);
  in.close(cur);
  /* bounds past the rows are clamped; a time range without 0 has no rows */
  assert_int_equal(in.open(in.arg, -5, 99, INT64_MIN, INT64_MAX, &cur, NULL), 0);
  assert_int_equal(in.next(cur, ev, 4, NULL), 4);
  assert_int_equal(in.next(cur, ev, 4, NULL), 4);
  assert_int_equal(in.next(cur, ev, 4, NULL), 2);
  assert_int_equal(in.next(cur, ev, 4, NULL), 0);
  in.close(cur);
  assert_int_equal(in.open(in.arg, 0, 10, 1, INT64_MAX, &cur, NULL), 0);
  assert_int_equal(in.next(cur, ev, 4, NULL), 0);
  in.close(cur);
  assert_int_equal(in.open(in.arg, 0, 10, INT64_MIN, 0, &cur, NULL), 0);
  assert_int_equal(in.next(cur, ev, 4, NULL), 0);
  in.close(cur);
  assert_int_equal(in.open(in.arg, 0, 10, 0, 1, &cur, NULL), 0);
  assert_int_equal(in.next(cur, ev, 4, NULL), 4);
  in.close(cur);
  assert_int_equal(in.open(in.arg, 8, 2, INT64_MIN, INT64_MAX, &cur, NULL), 0);
  assert_int_equal(in.next(cur, ev, 4, NULL), 0); /* an empty range */
  in.close(cur);
  zql_store_input_free(si);
}

static void expect_corrupt(fix_t *f, const char *doc, const char *msg)
{
  zql_store_txn_t *t = begin(f, true);
  zql_store_drop(t, "zagg.bad", NULL);
  put_json(t, "zagg.bad", "a", "{\"_id\": \"a\", \"value\": {\"v\": 1}, \"k\": {\"x\": 1}}");
  put_json(t, "zagg.bad", "b", doc);
  commit(t);
  t = begin(f, false);
  zql_input_t in, keep;
  memset(&in, 0x5a, sizeof in);
  keep = in;
  zql_store_input_t *si = (zql_store_input_t *)&keep;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_store_input_new(t, "zagg.bad", ZQL_STORE_INPUT_STATES, &in, &si, &err),
                   ZQL_E_CORRUPT);
  assert_ptr_equal(si, &keep); /* untouched on error */
  assert_memory_equal(&in, &keep, sizeof in);
  if (!strstr(err.buf, msg) || !strstr(err.buf, "'zagg.bad'"))
    fail_msg("message: %s (want %s)", err.buf, msg);
  zql_strbuf_release(&err);
  end(t);
}

static void test_corrupt_documents(void **state)
{
  fix_t *f = *state;
  expect_corrupt(f, "{\"_id\": \"b\", \"k\": {\"x\": 2}}", "document \"b\": no 'value' document");
  expect_corrupt(f, "{\"_id\": \"b\", \"value\": 7}", "'value' is not a valid document");
  expect_corrupt(f, "{\"_id\": \"b\", \"value\": {}, \"k\": [1]}", "'k' is not a valid document");
  expect_corrupt(f, "{\"_id\": {\"x\": 2}, \"value\": {}, \"state\": \"s\"}",
                 "document with a key document as _id: 'state' is not a valid document");
  /* a state that is not a document is harmless when states are not read */
  zql_store_txn_t *t = begin(f, false);
  zql_input_t in;
  zql_store_input_t *si = NULL;
  assert_int_equal(zql_store_input_new(t, "zagg.bad", 0, &in, &si, NULL), 0);
  assert_int_equal(zql_store_input_rows(si), 2);
  zql_store_input_free(si);
  /* the store's own refusal of a collection name */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  si = NULL;
  assert_int_equal(zql_store_input_new(t, "", 0, &in, &si, &err), ZQL_E_USAGE);
  assert_null(si);
  assert_true(err.len > 0);
  zql_strbuf_release(&err);
  end(t);
}

/* The rows come from the transaction's snapshot, not from later commits. */
static void test_snapshot(void **state)
{
  fix_t *f = *state;
  put_outputs(f);
  zql_store_txn_t *r = begin(f, false);
  zql_store_txn_t *w = begin(f, true);
  put_json(w, "zagg.daily", "p3/2024-01-03",
           "{\"value\": {\"views\": 1}, \"k\": {\"project\": \"p3\"}}");
  assert_int_equal(zql_store_del(w, "zagg.daily", "_all", 4, NULL), 0);
  commit(w);
  zql_input_t in;
  zql_store_input_t *si = NULL;
  assert_int_equal(zql_store_input_new(r, "zagg.daily", 0, &in, &si, NULL), 0);
  end(r);
  zql_event_t ev[8];
  assert_int_equal(read_all(&in, ev, 8), 3);
  char *j = row_json(&ev[0]);
  assert_json_eq(j, "{\"views\": 8}"); /* the deleted document is still there */
  bson_free(j);
  zql_store_input_free(si);
  r = begin(f, false);
  assert_int_equal(zql_store_input_new(r, "zagg.daily", 0, &in, &si, NULL), 0);
  end(r);
  assert_int_equal(read_all(&in, ev, 8), 3);
  j = row_json(&ev[2]);
  assert_json_eq(j, "{\"project\": \"p3\", \"views\": 1}");
  bson_free(j);
  zql_store_input_free(si);
}

static void test_input_oom(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  char id[16];
  for (int i = 0; i < 1500; i++) { /* past the first offset array and several buffer growths */
    snprintf(id, sizeof id, "%05d", i);
    put_json(t, "zagg.many", id,
             "{\"value\": {\"v\": \"a value of a few bytes\"}, \"k\": {\"x\": 1},"
             " \"state\": {\"v\": {\"k\": \"count\", \"n\": 1}}}");
  }
  commit(t);
  bool done = false;
  for (long k = 0; k < 200 && !done; k++) {
    t = begin(f, false);
    zql_input_t in;
    zql_store_input_t *si = NULL;
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    zql_alloc_fail_after(k);
    int rc = zql_store_input_new(t, "zagg.many", ZQL_STORE_INPUT_STATES, &in, &si, &err);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      assert_int_equal(zql_store_input_rows(si), 1500);
      zql_store_input_free(si);
      done = true;
    } else {
      assert_int_equal(rc, ZQL_E_NOMEM);
      assert_null(si);
    }
    zql_strbuf_release(&err);
    end(t);
  }
  assert_true(done);
}

/* }==== */

/* {==== the catalog sources =============================================================== */

/* A catalog entry for aggregate `name` of `source`, planned as `zql agg add` plans it. */
static void put_entry(zql_store_txn_t *t, const char *name, const char *source)
{
  zql_arena_t *a = zql_arena_create(NULL);
  zql_diags_t d;
  zql_diags_init(&d, a);
  zql_source_t src;
  zql_node_t *file = NULL;
  assert_int_equal(zql_source_init(&src, a, "entry.zql", source, strlen(source)), 0);
  bson_t doc = BSON_INITIALIZER, plan, arr;
  BSON_APPEND_UTF8(&doc, "_id", name);
  BSON_APPEND_UTF8(&doc, "name", name);
  BSON_APPEND_UTF8(&doc, "file", "entry.zql");
  BSON_APPEND_UTF8(&doc, "source", source);
  BSON_APPEND_INT64(&doc, "source_hash", 1);
  /* a source that no longer compiles keeps an empty plan: the reader stops at the parse */
  zql_plan_t *p = NULL;
  if (zql_parse(a, &src, &d, &file) == 0 && zql_analyze(a, &file, 1, &d) == 0) {
    for (uint32_t i = 0; i < file->u.list.n && !p; i++) {
      const zql_node_t *s = file->u.list.items[i];
      if (s->kind == ZQL_N_AGGREGATE && strcmp(s->u.query.name, name) == 0) {
        zql_plan_opts_t po;
        zql_plan_opts_init(&po);
        po.incremental = true;
        zql_strbuf_t err = ZQL_STRBUF_INIT;
        if (zql_plan_build(&src, s, &po, &p, &err) != 0)
          fail_msg("plan %s: %s", name, err.buf);
        zql_strbuf_release(&err);
      }
    }
  }
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "plan", &plan);
  if (p)
    assert_int_equal(zql_plan_to_bson(p, &plan), 0);
  bson_append_document_end(&doc, &plan);
  BSON_APPEND_INT64(&doc, "fingerprint", 2);
  BSON_APPEND_UTF8(&doc, "identity", "test");
  BSON_APPEND_INT32(&doc, "version", 1);
  BSON_APPEND_ARRAY_BEGIN(&doc, "into", &arr);
  if (p)
    BSON_APPEND_UTF8(&arr, "0", p->tables[0].into);
  bson_append_array_end(&doc, &arr);
  BSON_APPEND_UTF8(&doc, "mode", "reduce");
  BSON_APPEND_DATE_TIME(&doc, "created", 1700000000000);
  BSON_APPEND_DATE_TIME(&doc, "updated", 1700000000000);
  put(t, ZQL_CAT_COLL, name, &doc);
  bson_destroy(&doc);
  zql_plan_free(p);
  zql_diags_release(&d);
  zql_arena_delete(a);
}

/* A user program: parsed, its catalog sources found, everything analyzed. */
typedef struct prog {
  zql_arena_t *a;
  zql_diags_t d;
  zql_source_t src;
  zql_node_t *all[16];
  size_t nall;
  zql_catsrc_t cs;
  int rc_sources, rc_analyze;
  zql_strbuf_t err;
} prog_t;

static prog_t *compile(zql_store_txn_t *t, const char *text)
{
  prog_t *g = calloc(1, sizeof *g);
  assert_non_null(g);
  g->a = zql_arena_create(NULL);
  zql_diags_init(&g->d, g->a);
  zql_strbuf_init(&g->err);
  assert_int_equal(zql_source_init(&g->src, g->a, "<test>", text, strlen(text)), 0);
  assert_int_equal(zql_parse(g->a, &g->src, &g->d, &g->all[0]), 0);
  g->rc_sources = zql_catalog_sources(t, g->a, g->all, 1, &g->d, &g->cs, &g->err);
  assert_true(g->cs.nfiles < 15);
  for (uint32_t i = 0; i < g->cs.nfiles; i++)
    g->all[1 + i] = g->cs.files[i];
  g->nall = 1 + g->cs.nfiles;
  g->rc_analyze = -1;
  if (!g->rc_sources && g->d.nerr == 0)
    g->rc_analyze = zql_analyze(g->a, g->all, g->nall, &g->d);
  zql_catalog_diags_trim(&g->d, &g->cs);
  return g;
}

static void prog_free(prog_t *g)
{
  zql_strbuf_release(&g->err);
  zql_diags_release(&g->d);
  zql_arena_delete(g->a);
  free(g);
}

static void assert_analyzed(prog_t *g)
{
  if (g->rc_sources || g->rc_analyze || g->d.nerr) {
    zql_strbuf_t out = ZQL_STRBUF_INIT;
    zql_diags_render(&out, &g->d, false);
    fail_msg("sources %d analyze %d: %s%s", g->rc_sources, g->rc_analyze, g->err.buf, out.buf);
  }
}

/* The items of catalog file i as "KIND NAME ..." */
static void items_text(const prog_t *g, uint32_t i, zql_strbuf_t *sb)
{
  const zql_node_t *file = g->cs.files[i];
  for (uint32_t k = 0; k < file->u.list.n; k++) {
    const zql_node_t *s = file->u.list.items[k];
    const char *name = s->kind == ZQL_N_PARAM ? s->u.decl.name
                       : s->kind == ZQL_N_TABLE ? s->u.table.name
                       : s->kind == ZQL_N_REDUCER ? s->u.reducer.name
                       : s->kind == ZQL_N_AGGREGATE ? s->u.query.name : "?";
    zql_strbuf_addf(sb, "%s%s %s", k ? ", " : "", zql_node_kind_name(s->kind), name);
  }
}

static void assert_items(const prog_t *g, uint32_t i, const char *want)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  items_text(g, i, &sb);
  if (strcmp(sb.buf, want) != 0)
    fail_msg("catalog file %u: %s (want %s)", i, sb.buf, want);
  zql_strbuf_release(&sb);
}

static const char daily_src[] =
    "param kind = \"pageview\";\n"
    "aggregate daily from event where type == $kind\n"
    "  group by context.project as project, bucket(timestamp, day) as day\n"
    "  compute views = count(), users = hll(context.user), ms = avg(extra.ms);\n"
    "aggregate weekly from agg daily group by project, bucket(day, week) as week\n"
    "  compute views = sum(views), users = merge(users);\n"
    "aggregate unrelated from event compute n = count();\n"
    "from event compute n = count();\n"
    "explain daily;\n";

static void test_sources_basic(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "daily", daily_src);
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t,
      "from agg daily group by project compute n = sum(views), u = merge(users);");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 1);
  /* only daily and the definitions of its source: weekly, unrelated, the query and the
   * explain are not analyzed, planned or run */
  assert_items(g, 0, "PARAM kind, AGGREGATE daily");
  assert_int_equal(g->cs.nnames, 1);
  assert_string_equal(g->cs.names[0], "daily");
  const zql_source_t *cat = zql_file_source(g->cs.files[0]);
  assert_string_equal(cat->name, "catalog:daily");
  assert_int_equal(cat->order, 1);
  /* the user's query plans over the stored aggregate */
  zql_plan_t *p = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_plan_build(&g->src, g->all[0]->u.list.items[0], NULL, &p, &err), 0);
  assert_string_equal(p->source_agg, "daily");
  zql_plan_free(p);
  zql_strbuf_release(&err);
  prog_free(g);
  end(t);

  /* weekly's own `from agg daily` is met inside the same source */
  t = begin(f, true);
  put_entry(t, "weekly", daily_src);
  commit(t);
  t = begin(f, false);
  g = compile(t, "from agg weekly order by views desc;");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 1);
  assert_items(g, 0, "PARAM kind, AGGREGATE daily, AGGREGATE weekly");
  assert_int_equal(g->cs.nnames, 1);
  assert_string_equal(g->cs.names[0], "weekly");
  prog_free(g);

  /* two names of one source share one parsed file */
  g = compile(t, "from agg weekly compute n = sum(views);\n"
                 "from agg daily compute n = sum(views);\n"
                 "aggregate mine from event compute n = count() schedule after daily;\n");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 1);
  assert_items(g, 0, "PARAM kind, AGGREGATE daily, AGGREGATE weekly");
  assert_int_equal(g->cs.nnames, 2);
  prog_free(g);

  /* an aggregate the user defines is never looked up */
  g = compile(t, "aggregate daily from event group by type compute n = count();\n"
                 "from agg daily compute n = sum(n);");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 0);
  assert_int_equal(g->cs.nnames, 0);
  prog_free(g);
  end(t);
}

/* A stored aggregate's source may hold an older definition of another stored aggregate:
 * a name the user reads means the catalog's definition; the old one is renamed and read
 * only by its neighbour. */
static void test_sources_versions(void **state)
{
  fix_t *f = *state;
  static const char old_src[] =
      "param kind = \"pageview\";\n"
      "aggregate daily from event\n"
      "  group by context.project as project, bucket(timestamp, day) as day\n"
      "  compute views = count();\n"
      "aggregate weekly from agg daily group by project, bucket(day, week) as week\n"
      "  compute views = sum(views);\n";
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "weekly", old_src);
  put_entry(t, "daily", daily_src); /* daily changed since weekly was added */
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t, "from agg weekly;\nfrom agg daily compute u = merge(users);");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 2);
  assert_items(g, 0, "PARAM kind, AGGREGATE daily@catalog, AGGREGATE weekly");
  assert_items(g, 1, "PARAM kind@catalog, AGGREGATE daily");
  const zql_node_t *weekly = g->cs.files[0]->u.list.items[2];
  assert_string_equal(weekly->u.query.sources.items[0]->u.source.name, "daily@catalog");
  const zql_node_t *q = g->all[0]->u.list.items[1];
  assert_ptr_equal(q->u.query.sources.items[0]->u.source.def, g->cs.files[1]->u.list.items[1]);
  assert_int_equal(g->cs.nnames, 2);
  prog_free(g);
  end(t);
}

static void test_sources_transitive(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "daily", daily_src);
  /* monthly lives in another file and reads daily from the store */
  static const char monthly_src[] =
      "aggregate monthly from agg daily group by project, bucket(day, month) as month\n"
      "  compute views = sum(views), users = merge(users);\n";
  /* put_entry plans what it stores, which needs daily's definition next to monthly: plan
   * it from a file that holds both ... */
  zql_strbuf_t both = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&both, daily_src);
  zql_strbuf_adds(&both, monthly_src);
  put_entry(t, "monthly", both.buf);
  zql_strbuf_release(&both);
  /* ... then store the file that holds monthly alone as its source */
  bson_t doc;
  zql_catentry_t e;
  assert_int_equal(zql_catalog_get(t, "monthly", &e, &doc, NULL), 0);
  bson_t copy = BSON_INITIALIZER;
  bson_iter_t it;
  assert_true(bson_iter_init(&it, &doc));
  while (bson_iter_next(&it))
    if (strcmp(bson_iter_key(&it), "source") != 0)
      assert_true(bson_append_iter(&copy, NULL, 0, &it));
  BSON_APPEND_UTF8(&copy, "source", monthly_src);
  put(t, ZQL_CAT_COLL, "monthly", &copy);
  bson_destroy(&copy);
  /* a third level in a third file */
  put_entry(t, "yearly", "aggregate yearly from agg monthly group by bucket(month, year) as year\n"
                         "  compute views = sum(views);\n");
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t, "from agg yearly;");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 3);
  assert_items(g, 0, "AGGREGATE yearly");
  assert_items(g, 1, "AGGREGATE monthly");
  assert_items(g, 2, "PARAM kind, AGGREGATE daily");
  assert_int_equal(zql_file_source(g->cs.files[2])->order, 3);
  assert_int_equal(g->cs.nnames, 1); /* only the user's name */
  assert_string_equal(g->cs.names[0], "yearly");
  prog_free(g);
  end(t);
}

static void test_sources_unknown(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "daily", daily_src);
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t, "from agg daily compute n = sum(views);\nfrom agg nope;");
  assert_int_equal(g->rc_sources, 0);
  assert_int_equal(g->cs.nfiles, 1);
  assert_int_equal(g->rc_analyze, ZQL_E_UNKNOWN_AGGREGATE);
  assert_int_equal(g->d.nerr, 1);
  const zql_error_t *e = &g->d.items[0];
  assert_int_equal(e->code, ZQL_E_UNKNOWN_AGGREGATE);
  assert_ptr_equal(e->source, &g->src); /* at the user's text, with its caret */
  assert_int_equal(e->span.start, strlen("from agg daily compute n = sum(views);\nfrom "));
  assert_string_equal(e->message, "unknown aggregate 'nope'");
  prog_free(g);
  end(t);

  /* no store: nothing is looked up, the analyzer says the same */
  g = compile(NULL, "from agg daily;");
  assert_int_equal(g->rc_sources, 0);
  assert_int_equal(g->cs.nfiles, 0);
  assert_int_equal(g->rc_analyze, ZQL_E_UNKNOWN_AGGREGATE);
  prog_free(g);
}

static void test_wanted(void **state)
{
  (void)state;
  static const struct {
    const char *text;
    bool wanted;
  } cases[] = {
      {"from event compute n = count();", false},
      {"aggregate a from event compute n = count(); from agg a;", false},
      {"aggregate a from event compute n = count(); explain a;", false},
      {"from agg a;", true},
      {"explain a;", true},
      {"explain from agg a;", true},
      {"aggregate b from event compute n = count() schedule after a;", true},
      {"aggregate b from agg a compute n = sum(n);", true},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    zql_arena_t *a = zql_arena_create(NULL);
    zql_diags_t d;
    zql_diags_init(&d, a);
    zql_source_t src;
    zql_node_t *file;
    assert_int_equal(zql_source_init(&src, a, "<t>", cases[i].text, strlen(cases[i].text)), 0);
    assert_int_equal(zql_parse(a, &src, &d, &file), 0);
    if (zql_catalog_wanted(&file, 1) != cases[i].wanted)
      fail_msg("%s: wanted should be %d", cases[i].text, cases[i].wanted);
    zql_diags_release(&d);
    zql_arena_delete(a);
  }
}

/* Names the user's text defines are renamed in the catalog source, references too. */
static void test_sources_collisions(void **state)
{
  fix_t *f = *state;
  static const char src[] =
      "param p = 2;\n"
      "table t[project: string] of int: sum();\n"
      "reducer r(x: number) state {n: int64} {\n"
      "  init = {n: 0}; add = {n: s.n + 1}; merge = {n: a.n + b.n}; final = s.n;\n"
      "}\n"
      "aggregate inner from event group by type compute n = count();\n"
      "aggregate stored from agg inner group by type\n"
      "  compute n = sum(n) * $p, m = r(n) schedule after inner;\n"
      "aggregate mapped from event map { emit t[context.project] <- $p; };\n";
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "stored", src);
  put_entry(t, "mapped", src);
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t,
      "param p = \"user\";\n"
      "table t[a: string, b: string] of int: max();\n"
      "reducer r(x: string) state {c: int64} {\n"
      "  init = {c: 0}; add = {c: s.c + 1}; final = s.c;\n"
      "}\n"
      "aggregate inner from event compute n = count();\n"
      "aggregate mine from agg stored group by type compute n = sum(n), m = sum(m);\n"
      "from agg mapped group by project compute v = merge(value);\n"
      "from agg mine where $p == \"user\" compute n = sum(n), x = r(type);\n");
  assert_analyzed(g);
  assert_int_equal(g->cs.nfiles, 1);
  assert_items(g, 0, "PARAM p@catalog, TABLE t@catalog, REDUCER r@catalog, "
                     "AGGREGATE inner@catalog, AGGREGATE stored, AGGREGATE mapped");
  /* the references moved with the definitions */
  const zql_list_t *items = &g->cs.files[0]->u.list;
  const zql_node_t *stored = items->items[4];
  assert_string_equal(stored->u.query.sources.items[0]->u.source.name, "inner@catalog");
  assert_string_equal(stored->u.query.sources.items[0]->u.source.def->u.query.name,
                      "inner@catalog");
  const zql_node_t *opt = stored->u.query.options.items[0];
  assert_string_equal(opt->u.option.ident, "inner@catalog");
  const zql_node_t *m = stored->u.query.compute.items[1]->u.aggitem.expr;
  assert_string_equal(m->u.call.name, "r@catalog");
  assert_ptr_equal(m->u.call.reducer, items->items[2]);
  /* the user's names still mean the user's definitions */
  const zql_node_t *mine = g->all[0]->u.list.items[4];
  assert_ptr_equal(mine->u.query.sources.items[0]->u.source.def, stored);
  prog_free(g);

  /* a name already taken as NAME@catalog takes the next number */
  g = compile(t, "param p = 1; param `p@catalog` = 1; from agg stored compute n = sum(n);");
  assert_analyzed(g);
  assert_items(g, 0, "PARAM p@catalog2, TABLE t, REDUCER r, AGGREGATE inner, AGGREGATE stored");
  prog_free(g);
  end(t);
}

static void test_sources_errors(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "daily", daily_src);
  /* an entry whose source does not define it */
  put_entry(t, "ghost", "aggregate other from event compute n = count();");
  /* an entry without its plan */
  put_json(t, ZQL_CAT_COLL, "broken",
           "{\"_id\": \"broken\", \"name\": \"broken\", \"source\": \"x\"}");
  /* a stored source that no longer parses */
  put_entry(t, "old", "aggregate old from event compute n = count() frobnicate;");
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t, "from agg ghost;");
  assert_int_equal(g->rc_sources, ZQL_E_CORRUPT);
  assert_non_null(strstr(g->err.buf,
      "catalog entry 'ghost': its source defines no aggregate 'ghost'"));
  prog_free(g);
  g = compile(t, "from agg daily; from agg broken;");
  assert_int_equal(g->rc_sources, ZQL_E_CORRUPT);
  assert_non_null(strstr(g->err.buf, "'broken'"));
  prog_free(g);
  g = compile(t, "from agg old;");
  assert_int_equal(g->rc_sources, 0);
  assert_true(g->d.nerr > 0);
  assert_int_equal(g->rc_analyze, -1); /* not analyzed: the parse error is the answer */
  const zql_error_t *e = &g->d.items[0];
  assert_int_equal(e->severity, ZQL_SEV_ERROR);
  assert_non_null(e->source);
  assert_string_equal(e->source->name, "catalog:old");
  prog_free(g);
  end(t);

  /* out of memory anywhere in the resolution: ZQL_E_NOMEM, never a crash */
  bool done = false;
  for (long k = 0; k < 400 && !done; k++) {
    t = begin(f, false);
    zql_arena_t *a = zql_arena_create(NULL);
    zql_diags_t d;
    zql_diags_init(&d, a);
    zql_source_t src;
    zql_node_t *file;
    const char *q = "from agg daily compute n = sum(views);";
    assert_int_equal(zql_source_init(&src, a, "<t>", q, strlen(q)), 0);
    assert_int_equal(zql_parse(a, &src, &d, &file), 0);
    zql_catsrc_t cs;
    zql_alloc_fail_after(k);
    int rc = zql_catalog_sources(t, a, &file, 1, &d, &cs, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      assert_int_equal(cs.nfiles, 1);
      done = true;
    } else {
      assert_int_equal(rc, ZQL_E_NOMEM);
    }
    zql_diags_release(&d);
    zql_arena_delete(a);
    end(t);
  }
  assert_true(done);
}

static void test_diags_trim(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  /* W3901 in the stored source; W3902 (an unused let) in the user's */
  put_entry(t, "warned", "aggregate warned from event where type == null compute n = count();");
  commit(t);
  t = begin(f, false);
  prog_t *g = compile(t, "from agg warned let unused = 1 compute n = sum(n);");
  assert_analyzed(g);
  assert_int_equal(g->d.nwarn, 1);
  assert_int_equal(g->d.n, 1);
  assert_int_equal(g->d.items[0].code, ZQL_W_UNUSED_LET);
  assert_ptr_equal(g->d.items[0].source, &g->src);
  prog_free(g);
  end(t);
}

/* }==== */

/* {==== end to end ======================================================================== */

/* Events as an executor input: an array of documents with their timestamps. */
typedef struct evs {
  bson_t **docs;
  int64_t *ts;
  size_t n;
} evs_t;

static int ev_split(void *arg, int64_t lo, int64_t hi, size_t n, int64_t *bounds, zql_strbuf_t *err)
{
  (void)arg;
  (void)err;
  if (hi <= lo || n == 0)
    return 0;
  if (n > (size_t)(hi - lo))
    n = (size_t)(hi - lo);
  for (size_t i = 0; i <= n; i++)
    bounds[i] = lo + (hi - lo) * (int64_t)i / (int64_t)n;
  return (int)n;
}

typedef struct evcur {
  const evs_t *e;
  int64_t next, end, ts_lo, ts_hi;
} evcur_t;

static int ev_open(void *arg, int64_t lo, int64_t hi, int64_t ts_lo, int64_t ts_hi, void **out,
                   zql_strbuf_t *err)
{
  (void)err;
  evcur_t *c = calloc(1, sizeof *c);
  if (!c)
    return ZQL_E_NOMEM;
  *c = (evcur_t){arg, lo, hi, ts_lo, ts_hi};
  *out = c;
  return 0;
}

static int ev_next(void *cursor, zql_event_t *ev, size_t max, zql_strbuf_t *err)
{
  (void)err;
  evcur_t *c = cursor;
  size_t n = 0;
  while (n < max && c->next < c->end) {
    size_t i = (size_t)c->next++;
    if (c->e->ts[i] < c->ts_lo || c->e->ts[i] >= c->ts_hi)
      continue;
    ev[n] = (zql_event_t){(int64_t)i + 1, c->e->ts[i], bson_get_data(c->e->docs[i]),
                          c->e->docs[i]->len};
    n++;
  }
  return (int)n;
}

static void ev_close(void *cursor)
{
  free(cursor);
}

static void make_events(evs_t *e, size_t n)
{
  e->docs = calloc(n, sizeof *e->docs);
  e->ts = calloc(n, sizeof *e->ts);
  assert_true(e->docs && e->ts);
  e->n = n;
  uint64_t x = 88172645463325252ull; /* xorshift64 (Marsaglia 2003) */
  static const char *const types[] = {"pageview", "pageview", "download", "login"};
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    /* 2024-01-29 .. 2024-02-03: two months */
    int64_t ts = 1706486400000 + (int64_t)(x % (5 * 86400000ull));
    bson_t *d = bson_new(), ctx, extra;
    BSON_APPEND_DATE_TIME(d, "timestamp", ts);
    BSON_APPEND_UTF8(d, "type", types[(x >> 20) % 4]);
    BSON_APPEND_DOCUMENT_BEGIN(d, "context", &ctx);
    char s[32];
    snprintf(s, sizeof s, "p%u", (unsigned)((x >> 30) % 4));
    BSON_APPEND_UTF8(&ctx, "project", s);
    snprintf(s, sizeof s, "u%u", (unsigned)((x >> 35) % 60));
    BSON_APPEND_UTF8(&ctx, "user", s);
    bson_append_document_end(d, &ctx);
    BSON_APPEND_DOCUMENT_BEGIN(d, "extra", &extra);
    if ((x >> 40) % 5)
      BSON_APPEND_DOUBLE(&extra, "ms", (double)((x >> 42) % 100000) / 64.0);
    bson_append_document_end(d, &extra);
    e->docs[i] = d;
    e->ts[i] = ts;
  }
}

static void free_events(evs_t *e)
{
  for (size_t i = 0; i < e->n; i++)
    bson_destroy(e->docs[i]);
  free(e->docs);
  free(e->ts);
}

static void events_input(evs_t *e, zql_input_t *in)
{
  memset(in, 0, sizeof *in);
  *in = (zql_input_t){e, 0, (int64_t)e->n, ev_split, ev_open, ev_next, ev_close, 0};
}

/* Plan statement k of the user's file g and run it over in. The result's column names
 * live in the plan: free *plan after the result. */
static zql_result_t *run_stmt(prog_t *g, uint32_t k, const zql_input_t *in, bool keep,
                              bool incremental, zql_plan_t **plan)
{
  zql_plan_opts_t po;
  zql_plan_opts_init(&po);
  po.incremental = incremental;
  zql_plan_t *p = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_plan_build(&g->src, g->all[0]->u.list.items[k], &po, &p, &err) != 0)
    fail_msg("plan: %s", err.buf);
  zql_xplan_t *x = NULL;
  if (zql_xplan_prepare(p, 1707000000000, &x, &err) != 0)
    fail_msg("prepare: %s", err.buf);
  zql_run_opts_t ro;
  zql_run_opts_init(&ro);
  ro.threads = 3;
  ro.keep_states = keep;
  zql_result_t *res = NULL;
  if (zql_exec_run(x, in, &ro, &res, &err) != 0)
    fail_msg("run: %s", err.buf);
  zql_xplan_free(x);
  zql_strbuf_release(&err);
  *plan = p;
  return res;
}

/* A result table as text: the column names, then one line per row. */
static void table_text(const zql_result_table_t *t, zql_strbuf_t *sb)
{
  for (uint32_t c = 0; c < t->ncols; c++)
    zql_strbuf_addf(sb, "%s%s", c ? "," : "", t->names[c]);
  zql_strbuf_addc(sb, '\n');
  for (uint64_t r = 0; r < t->nrows; r++) {
    for (uint32_t c = 0; c < t->ncols; c++) {
      if (c)
        zql_strbuf_addc(sb, ',');
      zql_cell_text(sb, &t->vals[r * t->ncols + c]);
    }
    zql_strbuf_addc(sb, '\n');
  }
}

static void test_end_to_end(void **state)
{
  fix_t *f = *state;
  static const char daily[] =
      "aggregate daily from event where type == \"pageview\"\n"
      "  group by context.project as project, bucket(timestamp, day) as day\n"
      "  compute views = count(), users = hll(context.user), ms = avg(extra.ms),\n"
      "          q = quantile(extra.ms, 0.9), total = sum(extra.ms)\n"
      "  key \"{project}/{day:%Y-%m-%d}\";\n";
  evs_t e;
  make_events(&e, 2000);
  zql_input_t evin;
  events_input(&e, &evin);

  /* what `zql agg add` and `zql agg run` store: the entry and the output documents */
  prog_t *g = compile(NULL, daily);
  assert_analyzed(g);
  zql_plan_t *dp;
  zql_result_t *dr = run_stmt(g, 0, &evin, true, true, &dp);
  assert_int_equal(dr->ntables, 1);
  const zql_result_table_t *rt = &dr->tables[0];
  assert_true(rt->nrows >= 16); /* 4 projects x 5 days, a few empty */
  zql_store_txn_t *t = begin(f, true);
  put_entry(t, "daily", daily);
  for (uint64_t r = 0; r < rt->nrows; r++) {
    const zql_val_t *row = &rt->vals[r * rt->ncols];
    zql_strbuf_t id = ZQL_STRBUF_INIT;
    zql_outdoc_id(&id, dp, 0, row);
    bson_t d = BSON_INITIALIZER;
    zql_outdoc_meta_t meta = {2000, 1, 0, true};
    assert_true(zql_outdoc_build(&d, dp, 0, row, &rt->state[r], id.buf, id.len, &meta));
    assert_int_equal(zql_store_put(t, dp->tables[0].into, id.buf, id.len, &d, NULL), 0);
    bson_destroy(&d);
    zql_strbuf_release(&id);
  }
  commit(t);
  zql_strbuf_t direct_daily = ZQL_STRBUF_INIT;
  uint64_t ndaily = rt->nrows;
  table_text(rt, &direct_daily);
  zql_result_free(dr);
  zql_plan_free(dp);
  prog_free(g);

  /* the rollup through the store equals the direct monthly query (R17, exact merges) */
  t = begin(f, false);
  g = compile(t,
      "from agg daily group by project, bucket(day, month) as month\n"
      "  compute views = sum(views), users = merge(users), ms = merge(ms), q = merge(q),\n"
      "          total = sum(total);\n"
      "from event where type == \"pageview\"\n"
      "  group by context.project as project, bucket(timestamp, month) as month\n"
      "  compute views = count(), users = hll(context.user), ms = avg(extra.ms),\n"
      "          q = quantile(extra.ms, 0.9), total = sum(extra.ms);\n"
      "from agg daily;\n"
      "from agg daily where views > 1000;\n");
  assert_analyzed(g);
  zql_input_t in;
  zql_store_input_t *si = NULL;
  assert_int_equal(zql_store_input_new(t, "zagg.daily", ZQL_STORE_INPUT_STATES, &in, &si, NULL), 0);
  assert_int_equal(zql_store_input_rows(si), ndaily);
  zql_plan_t *p1, *p2, *p3, *p4;
  zql_result_t *via = run_stmt(g, 0, &in, false, false, &p1);
  zql_store_input_free(si);
  zql_result_t *direct = run_stmt(g, 1, &evin, false, false, &p2);
  zql_strbuf_t a = ZQL_STRBUF_INIT, b = ZQL_STRBUF_INIT;
  table_text(&via->tables[0], &a);
  table_text(&direct->tables[0], &b);
  assert_true(via->tables[0].nrows >= 8); /* 4 projects x 2 months */
  assert_string_equal(a.buf, b.buf);
  zql_result_free(via);
  zql_result_free(direct);
  zql_plan_free(p1);
  zql_plan_free(p2);

  /* `from agg daily`: one row per stored document, key fields and final values */
  assert_int_equal(zql_store_input_new(t, "zagg.daily", 0, &in, &si, NULL), 0);
  zql_result_t *rows = run_stmt(g, 2, &in, false, false, &p3);
  zql_strbuf_reset(&a);
  table_text(&rows->tables[0], &a);
  assert_int_equal(rows->tables[0].nrows, ndaily);
  zql_result_free(rows);
  rows = run_stmt(g, 3, &in, false, false, &p4);
  assert_int_equal(rows->tables[0].nrows, 0);
  zql_result_free(rows);
  zql_plan_free(p3);
  zql_plan_free(p4);
  zql_store_input_free(si);
  end(t);
  /* the same rows as the aggregate's own result, in store id order ("p0/2024-01-29" ...),
   * which here is also key order */
  assert_string_equal(a.buf, direct_daily.buf);
  zql_strbuf_release(&a);
  zql_strbuf_release(&b);
  zql_strbuf_release(&direct_daily);
  prog_free(g);
  free_events(&e);
}

/* The reduce-mode commit: states of runs over (0, k] and (k, n] merged by
 * zql_exec_refinalize equal one run over (0, n], values and saved state bytes (R11,
 * resolved point 14), for every split point tried. */
static void test_refinalize(void **state)
{
  (void)state;
  static const char src[] =
      "aggregate m from event\n"
      "  group by context.project as project, bucket(timestamp, day) as day\n"
      "  compute n = count(), users = hll(context.user), ms = avg(extra.ms),\n"
      "          p50 = quantile(extra.ms, 0.5), p90 = quantile(extra.ms, 0.9),\n"
      "          total = sum(extra.ms), ratio = sum(extra.ms) / count(),\n"
      "          who = distinct_count(context.user), lo = min(extra.ms),\n"
      "          last_type = last(type), kinds = topk(type, 3)\n"
      "  key \"{project}/{day:%Y-%m-%d}\";\n";
  evs_t e;
  make_events(&e, 1500);
  prog_t *g = compile(NULL, src);
  assert_analyzed(g);
  zql_input_t all;
  events_input(&e, &all);
  zql_plan_t *p;
  zql_result_t *whole = run_stmt(g, 0, &all, true, true, &p);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_xplan_t *x = NULL;
  assert_int_equal(zql_xplan_prepare(p, 1707000000000, &x, &err), 0);
  const zql_result_table_t *w = &whole->tables[0];
  assert_true(w->nrows >= 16);
  static const int64_t cuts[] = {1, 700, 1499};
  for (size_t c = 0; c < ZQL_ARRAY_LEN(cuts); c++) {
    zql_input_t a = all, b = all;
    a.hi = cuts[c];
    b.lo = cuts[c];
    zql_plan_t *pa, *pb;
    zql_result_t *ra = run_stmt(g, 0, &a, true, true, &pa);
    zql_result_t *rb = run_stmt(g, 0, &b, true, true, &pb);
    const zql_result_table_t *ta = &ra->tables[0], *tb = &rb->tables[0];
    zql_arena_t *arena = zql_arena_create(NULL);
    for (uint64_t r = 0; r < w->nrows; r++) {
      const zql_val_t *row = &w->vals[r * w->ncols];
      /* this group's rows in the two parts (by the rendered id) */
      zql_strbuf_t id = ZQL_STRBUF_INIT, ida = ZQL_STRBUF_INIT;
      zql_outdoc_id(&id, p, 0, row);
      const bson_t *sts[2];
      bson_t sv[2];
      size_t ns = 0;
      const zql_result_table_t *parts[2] = {ta, tb};
      for (int k = 0; k < 2; k++)
        for (uint64_t q = 0; q < parts[k]->nrows; q++) {
          zql_strbuf_reset(&ida);
          zql_outdoc_id(&ida, p, 0, &parts[k]->vals[q * parts[k]->ncols]);
          if (ida.len == id.len && memcmp(ida.buf, id.buf, id.len) == 0) {
            const zql_val_t *st = &parts[k]->state[q];
            assert_true(bson_init_static(&sv[ns], st->u.p, st->len));
            sts[ns] = &sv[ns];
            ns++;
          }
        }
      assert_true(ns >= 1);
      zql_val_t *cols = zql_arena_alloc(arena, w->ncols * sizeof *cols);
      zql_val_t merged;
      if (zql_exec_refinalize(x, 0, row, sts, ns, arena, cols, &merged, &err) != 0)
        fail_msg("refinalize: %s", err.buf);
      for (uint32_t col = 0; col < w->ncols; col++) {
        zql_strbuf_t t1 = ZQL_STRBUF_INIT, t2 = ZQL_STRBUF_INIT;
        zql_cell_text(&t1, &row[col]);
        zql_cell_text(&t2, &cols[col]);
        if (strcmp(w->names[col], "kinds") != 0 || ns == 1) /* topk: split-dependent */
          assert_string_equal(t1.buf, t2.buf);
        zql_strbuf_release(&t1);
        zql_strbuf_release(&t2);
      }
      assert_int_equal(merged.t, ZQL_V_DOC);
      bson_t mw, mm;
      assert_true(bson_init_static(&mw, w->state[r].u.p, w->state[r].len));
      assert_true(bson_init_static(&mm, merged.u.p, merged.len));
      bson_iter_t iw, im;
      assert_true(bson_iter_init(&iw, &mw) && bson_iter_init(&im, &mm));
      while (bson_iter_next(&iw)) { /* every saved state byte for byte (but topk's) */
        assert_true(bson_iter_next(&im));
        assert_string_equal(bson_iter_key(&iw), bson_iter_key(&im));
        if (strcmp(bson_iter_key(&iw), "kinds") == 0)
          continue;
        const uint8_t *d1, *d2;
        uint32_t l1, l2;
        bson_iter_document(&iw, &l1, &d1);
        bson_iter_document(&im, &l2, &d2);
        assert_int_equal(l1, l2);
        assert_memory_equal(d1, d2, l1);
      }
      assert_false(bson_iter_next(&im));
      zql_strbuf_release(&id);
      zql_strbuf_release(&ida);
    }
    /* a state of another kind is refused, not merged */
    bson_t bad = BSON_INITIALIZER, one;
    BSON_APPEND_DOCUMENT_BEGIN(&bad, "n", &one);
    BSON_APPEND_UTF8(&one, "k", "hll");
    bson_append_document_end(&bad, &one);
    const bson_t *bs[1] = {&bad};
    zql_val_t *cols = zql_arena_alloc(arena, w->ncols * sizeof *cols);
    zql_val_t merged;
    zql_strbuf_reset(&err);
    assert_int_equal(zql_exec_refinalize(x, 0, w->vals, bs, 1, arena, cols, &merged, &err),
                     ZQL_E_CORRUPT);
    assert_non_null(strstr(err.buf, "'n'"));
    bson_destroy(&bad);
    zql_arena_delete(arena);
    zql_result_free(ra);
    zql_result_free(rb);
    zql_plan_free(pa);
    zql_plan_free(pb);
  }
  zql_strbuf_release(&err);
  zql_xplan_free(x);
  zql_result_free(whole);
  zql_plan_free(p);
  prog_free(g);
  free_events(&e);
}

/* }==== */

int zql_unit_store_input(void)
{
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_rows),               T(test_missing_collection), T(test_split_and_ranges),
      T(test_corrupt_documents),  T(test_snapshot),           T(test_input_oom),
      T(test_sources_basic),      T(test_sources_versions),   T(test_sources_transitive),
      T(test_sources_unknown),   T(test_refinalize),
      T(test_wanted),             T(test_sources_collisions), T(test_sources_errors),
      T(test_diags_trim),         T(test_end_to_end),
#undef T
  };
  return cmocka_run_group_tests_name("store_input", tests, NULL, NULL);
}
