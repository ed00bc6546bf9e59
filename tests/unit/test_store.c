/*
 * test_store.c -- unit tests of the results store (runtime/store.h, LMDB backend
 * runtime/store_lmdb.c).
 *
 * Each test gets a fresh data directory under /tmp (mkdtemp) and removes it afterwards.
 * Covered: put/get/del and NOTFOUND; durability across close/reopen; abort; snapshot
 * isolation of a read transaction against a write transaction in the same thread and
 * across threads; one writer at a time; scan order, ranges and prefixes over binary ids
 * with 0x00 and 0xFF bytes next to other collections; updates during a scan; count, drop;
 * replace_collection (commit and abort); collection listing and names; 500 collections;
 * 1 MiB documents; 100 000 documents in one transaction; map growth; invalid arguments;
 * values corrupted through raw LMDB; a foreign LMDB environment; opening a store twice.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <lmdb.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/outdoc.h"
#include "runtime/store.h"


typedef struct {
  char root[64];  /* the mkdtemp directory */
  char data[96];  /* root/data: the data directory (created by the store) */
  zql_store_t *s;
} fix_t;

static void rm_store_files(const char *data)
{
  char p[160];
  snprintf(p, sizeof p, "%s/results/data.mdb", data);
  unlink(p);
  snprintf(p, sizeof p, "%s/results/lock.mdb", data);
  unlink(p);
  snprintf(p, sizeof p, "%s/results", data);
  rmdir(p);
  rmdir(data);
}

static int setup(void **state)
{
  fix_t *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  strcpy(f->root, "/tmp/zql-store-XXXXXX");
  if (!mkdtemp(f->root)) {
    free(f);
    return -1;
  }
  snprintf(f->data, sizeof f->data, "%s/data", f->root);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_open_lmdb(f->data, &f->s, &err);
  if (rc) {
    fprintf(stderr, "open: %s\n", err.buf);
    zql_strbuf_release(&err);
    rmdir(f->root);
    free(f);
    return -1;
  }
  zql_strbuf_release(&err);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fix_t *f = *state;
  zql_store_close(f->s);
  rm_store_files(f->data);
  rmdir(f->root);
  free(f);
  return 0;
}

static void reopen(fix_t *f)
{
  zql_store_close(f->s);
  f->s = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_open_lmdb(f->data, &f->s, &err);
  if (rc)
    fail_msg("reopen: %s", err.buf);
  zql_strbuf_release(&err);
}

static zql_store_txn_t *begin(fix_t *f, bool write)
{
  zql_store_txn_t *t = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_begin(f->s, write, &t, &err);
  if (rc)
    fail_msg("begin: %s", err.buf);
  zql_strbuf_release(&err);
  return t;
}

static void commit(zql_store_txn_t *t)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_commit(t, &err);
  if (rc)
    fail_msg("commit: %s", err.buf);
  zql_strbuf_release(&err);
}

/* put {v: v} under a string id. */
static void put_v(zql_store_txn_t *t, const char *coll, const void *id, size_t idlen, int v)
{
  bson_t b = BSON_INITIALIZER;
  BSON_APPEND_INT32(&b, "v", v);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_put(t, coll, id, idlen, &b, &err);
  if (rc)
    fail_msg("put: %s", err.buf);
  zql_strbuf_release(&err);
  bson_destroy(&b);
}

static int doc_v(const bson_t *doc)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "v") || !BSON_ITER_HOLDS_INT32(&it))
    return -1;
  return bson_iter_int32(&it);
}

/* get v of a document: the value, or -(result) for NOTFOUND/errors - 1000. */
static int get_v(zql_store_txn_t *t, const char *coll, const void *id, size_t idlen)
{
  bson_t doc;
  int rc = zql_store_get(t, coll, id, idlen, &doc, NULL);
  if (rc)
    return rc == ZQL_STORE_NOTFOUND ? -1000 : rc - 2000;
  return doc_v(&doc);
}

static uint64_t count(zql_store_txn_t *t, const char *coll)
{
  uint64_t n = 99999999;
  assert_int_equal(zql_store_count(t, coll, &n, NULL), 0);
  return n;
}

#define NOTFOUND (-1000)

/* {==== basic operations ====} */

static void test_put_get_del(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_v(t, "zagg.x", "a", 1, 1);
  assert_int_equal(get_v(t, "zagg.x", "a", 1), 1);
  assert_int_equal(get_v(t, "zagg.x", "b", 1), NOTFOUND);
  assert_int_equal(get_v(t, "zagg.none", "a", 1), NOTFOUND);
  assert_int_equal(count(t, "zagg.x"), 1);
  put_v(t, "zagg.x", "a", 1, 2); /* overwrite: the count stays */
  assert_int_equal(get_v(t, "zagg.x", "a", 1), 2);
  assert_int_equal(count(t, "zagg.x"), 1);
  put_v(t, "zagg.x", "b", 1, 3);
  assert_int_equal(count(t, "zagg.x"), 2);
  assert_int_equal(count(t, "zagg.none"), 0);
  assert_int_equal(zql_store_del(t, "zagg.x", "a", 1, NULL), 0);
  assert_int_equal(zql_store_del(t, "zagg.x", "a", 1, NULL), ZQL_STORE_NOTFOUND);
  assert_int_equal(zql_store_del(t, "zagg.none", "a", 1, NULL), ZQL_STORE_NOTFOUND);
  assert_int_equal(get_v(t, "zagg.x", "a", 1), NOTFOUND);
  assert_int_equal(get_v(t, "zagg.x", "b", 1), 3);
  assert_int_equal(count(t, "zagg.x"), 1);
  /* the document returned by get stays valid until the transaction ends, even across
   * updates that move LMDB's pages */
  bson_t doc;
  assert_int_equal(zql_store_get(t, "zagg.x", "b", 1, &doc, NULL), 0);
  char id[16];
  for (int i = 0; i < 2000; i++) {
    snprintf(id, sizeof id, "k%05d", i);
    put_v(t, "zagg.x", id, strlen(id), i);
  }
  put_v(t, "zagg.x", "b", 1, 4);
  assert_int_equal(zql_store_del(t, "zagg.x", "b", 1, NULL), 0);
  assert_int_equal(doc_v(&doc), 3);
  commit(t);

  t = begin(f, false);
  assert_int_equal(count(t, "zagg.x"), 2000);
  assert_int_equal(get_v(t, "zagg.x", "k01234", 6), 1234);
  zql_store_abort(t);
}

static void test_persist_and_abort(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_v(t, "$runs", "r1", 2, 7);
  commit(t);
  t = begin(f, true);
  put_v(t, "$runs", "r2", 2, 8);
  put_v(t, "$runs", "r1", 2, 9);
  put_v(t, "$catalog", "c", 1, 1);
  zql_store_abort(t); /* discards all three */
  reopen(f);
  t = begin(f, false);
  assert_int_equal(get_v(t, "$runs", "r1", 2), 7);
  assert_int_equal(get_v(t, "$runs", "r2", 2), NOTFOUND);
  assert_int_equal(get_v(t, "$catalog", "c", 1), NOTFOUND);
  assert_int_equal(count(t, "$runs"), 1);
  zql_store_abort(t);
}

static void test_snapshot_same_thread(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_v(t, "c", "a", 1, 1);
  commit(t);

  zql_store_txn_t *r = begin(f, false);
  zql_store_txn_t *r2 = begin(f, false); /* several readers in one thread (MDB_NOTLS) */
  zql_store_txn_t *w = begin(f, true);   /* and a writer next to them */
  zql_store_txn_t *w2 = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_store_begin(f->s, true, &w2, &err), ZQL_E_USAGE);
  assert_null(w2);
  assert_non_null(strstr(err.buf, "already has a write transaction"));
  zql_strbuf_release(&err);

  put_v(w, "c", "a", 1, 2);
  put_v(w, "c", "b", 1, 3);
  assert_int_equal(get_v(r, "c", "a", 1), 1);
  assert_int_equal(get_v(r, "c", "b", 1), NOTFOUND);
  assert_int_equal(count(r, "c"), 1);
  bson_t old;
  assert_int_equal(zql_store_get(r, "c", "a", 1, &old, NULL), 0);
  commit(w);
  assert_int_equal(get_v(r, "c", "a", 1), 1); /* still the snapshot */
  assert_int_equal(doc_v(&old), 1);
  assert_int_equal(get_v(r2, "c", "b", 1), NOTFOUND);
  zql_store_abort(r);
  zql_store_abort(r2);
  r = begin(f, false);
  assert_int_equal(get_v(r, "c", "a", 1), 2);
  assert_int_equal(get_v(r, "c", "b", 1), 3);
  zql_store_abort(r);
}

/* {==== threads ====} */

typedef struct {
  fix_t *f;
  volatile int flag; /* set by the main thread before it commits */
  int seen_flag;
  int bad;
} thr_t;

static void *second_writer(void *arg)
{
  thr_t *x = arg;
  zql_store_txn_t *t = NULL;
  if (zql_store_begin(x->f->s, true, &t, NULL) != 0) {
    x->bad = 1;
    return NULL;
  }
  x->seen_flag = __atomic_load_n(&x->flag, __ATOMIC_SEQ_CST);
  /* The first writer's document is visible to the second writer. */
  if (get_v(t, "c", "first", 5) != 1)
    x->bad = 2;
  put_v(t, "c", "second", 6, 2);
  if (zql_store_commit(t, NULL) != 0)
    x->bad = 3;
  return NULL;
}

static void *reader(void *arg)
{
  thr_t *x = arg;
  int last = -1;
  for (int i = 0; i < 300 && !x->bad; i++) {
    zql_store_txn_t *t = NULL;
    if (zql_store_begin(x->f->s, false, &t, NULL) != 0) {
      x->bad = 10;
      break;
    }
    int a = get_v(t, "ctr", "a", 1), b = get_v(t, "ctr", "b", 1);
    if (a != NOTFOUND) {
      if (a < last || a != b) /* monotonic, and both written in one transaction */
        x->bad = 11;
      last = a;
    }
    zql_store_abort(t);
  }
  return NULL;
}

static void test_threads(void **state)
{
  fix_t *f = *state;
  thr_t x = {f, 0, 0, 0};
  zql_store_txn_t *t = begin(f, true);
  put_v(t, "c", "first", 5, 1);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, second_writer, &x), 0);
  struct timespec ts = {0, 50 * 1000 * 1000};
  nanosleep(&ts, NULL);
  __atomic_store_n(&x.flag, 1, __ATOMIC_SEQ_CST);
  commit(t);
  pthread_join(th, NULL);
  assert_int_equal(x.bad, 0);
  assert_int_equal(x.seen_flag, 1); /* it waited for our commit */

  /* readers in other threads see whole transactions only */
  thr_t y = {f, 0, 0, 0};
  pthread_t rd[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&rd[i], NULL, reader, &y), 0);
  for (int i = 0; i < 100; i++) {
    t = begin(f, true);
    put_v(t, "ctr", "a", 1, i);
    put_v(t, "ctr", "b", 1, i);
    commit(t);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(rd[i], NULL);
  assert_int_equal(y.bad, 0);
}

/* {==== scans ====} */

typedef struct {
  char got[64][16]; /* hex ids */
  int n;
  int stop_after; /* 0: never */
  int vsum;
} seen_t;

static int collect(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  seen_t *s = arg;
  char *o = s->got[s->n++];
  for (size_t i = 0; i < idlen && i < 7; i++)
    o += sprintf(o, "%02x", ((const uint8_t *)id)[i]);
  *o = '\0';
  s->vsum += doc_v(doc);
  return s->stop_after && s->n == s->stop_after ? 42 : 0;
}

/* Check the visited ids against a space-separated list of hex ids. */
static void expect(const seen_t *s, const char *want)
{
  char buf[1024] = "";
  for (int i = 0; i < s->n; i++) {
    if (i)
      strcat(buf, " ");
    strcat(buf, s->got[i]);
  }
  assert_string_equal(buf, want);
}

static const struct {
  const char *id;
  size_t len;
} ids[] = {
    {"\xff\xff", 2}, {"b", 1},        {"\x00", 1},     {"\xff", 1}, {"ab", 2},
    {"\x00\xff", 2}, {"\x00\x00", 2}, {"\x01", 1},     {"a", 1},    {"\xff\x00", 2},
};
#define ALL "00 0000 00ff 01 61 6162 62 ff ff00 ffff"

static void scan_check(zql_store_txn_t *t, const char *coll, const void *from, size_t fromlen,
                       const void *to, size_t tolen, const char *want)
{
  seen_t s = {.n = 0};
  assert_int_equal(zql_store_scan(t, coll, from, fromlen, to, tolen, collect, &s, NULL), 0);
  expect(&s, want);
}

static void prefix_check(zql_store_txn_t *t, const char *coll, const void *p, size_t plen,
                         const char *want)
{
  seen_t s = {.n = 0};
  assert_int_equal(zql_store_prefix(t, coll, p, plen, collect, &s, NULL), 0);
  expect(&s, want);
}

static void test_scan(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  /* neighbours on both sides in key space hold the same ids */
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ids); i++)
    put_v(t, "before", ids[i].id, ids[i].len, 100);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ids); i++)
    put_v(t, "mid", ids[i].id, ids[i].len, (int)i);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ids); i++)
    put_v(t, "after", ids[i].id, ids[i].len, 100);
  commit(t);

  for (int pass = 0; pass < 2; pass++) { /* read and write transactions */
    t = begin(f, pass == 1);
    scan_check(t, "mid", NULL, 0, NULL, 0, ALL);
    scan_check(t, "mid", "", 0, NULL, 0, ALL);
    scan_check(t, "mid", "\x00\xff", 2, "\xff", 1, "00ff 01 61 6162 62");
    scan_check(t, "mid", NULL, 0, "\x01", 1, "00 0000 00ff");
    scan_check(t, "mid", "\xff", 1, NULL, 0, "ff ff00 ffff");
    scan_check(t, "mid", "\x00\x01", 2, "\x00\xff", 2, "");
    scan_check(t, "mid", "a", 1, "a\x00", 2, "61");
    scan_check(t, "mid", "\xff\xff\x00", 3, NULL, 0, "");
    scan_check(t, "mid", NULL, 0, "", 0, ""); /* to = "": nothing is below it */
    scan_check(t, "none", NULL, 0, NULL, 0, "");
    prefix_check(t, "mid", "\x00", 1, "00 0000 00ff");
    prefix_check(t, "mid", "\xff", 1, "ff ff00 ffff");
    prefix_check(t, "mid", "a", 1, "61 6162");
    prefix_check(t, "mid", "ab", 2, "6162");
    prefix_check(t, "mid", "abc", 3, "");
    prefix_check(t, "mid", NULL, 0, ALL);
    prefix_check(t, "none", "a", 1, "");

    seen_t s = {.n = 0, .stop_after = 3};
    assert_int_equal(zql_store_scan(t, "mid", NULL, 0, NULL, 0, collect, &s, NULL), 42);
    expect(&s, "00 0000 00ff");
    s = (seen_t){.n = 0, .stop_after = 1};
    assert_int_equal(zql_store_prefix(t, "mid", "\xff", 1, collect, &s, NULL), 42);
    expect(&s, "ff");
    s = (seen_t){.n = 0};
    assert_int_equal(zql_store_scan(t, "mid", NULL, 0, NULL, 0, collect, &s, NULL), 0);
    assert_int_equal(s.vsum, 45); /* 0 + 1 + ... + 9: documents match their ids */
    zql_store_abort(t);
  }
}

typedef struct {
  zql_store_txn_t *t;
  int n;
  int bad;
} mover_t;

/* Move each visited document to "moved" and add a document ahead in the scan's range. */
static int move_doc(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  mover_t *m = arg;
  m->n++;
  if (zql_store_put(m->t, "moved", id, idlen, doc, NULL) ||
      zql_store_del(m->t, "src", id, idlen, NULL))
    m->bad = 1;
  char nid[16];
  int k = doc_v(doc);
  if (k < 50) { /* each of the first 50 adds one later document: 100 visited in all */
    snprintf(nid, sizeof nid, "n%03d", k + 50);
    put_v(m->t, "src", nid, strlen(nid), k + 50);
  }
  return 0;
}

static void test_scan_with_updates(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  char id[16];
  for (int i = 0; i < 50; i++) {
    snprintf(id, sizeof id, "n%03d", i);
    put_v(t, "src", id, strlen(id), i);
  }
  mover_t m = {t, 0, 0};
  assert_int_equal(zql_store_scan(t, "src", NULL, 0, NULL, 0, move_doc, &m, NULL), 0);
  assert_int_equal(m.bad, 0);
  assert_int_equal(m.n, 100);
  assert_int_equal(count(t, "src"), 0);
  assert_int_equal(count(t, "moved"), 100);
  assert_int_equal(get_v(t, "moved", "n099", 4), 99);
  commit(t);
}

/* {==== collections ====} */

static void test_drop(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  for (int i = 0; i < 300; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d", i);
    put_v(t, "gone", id, strlen(id), i);
    put_v(t, "kept", id, strlen(id), i);
  }
  commit(t);
  t = begin(f, true);
  assert_int_equal(zql_store_drop(t, "gone", NULL), 0);
  assert_int_equal(zql_store_drop(t, "gone", NULL), ZQL_STORE_NOTFOUND);
  assert_int_equal(count(t, "gone"), 0);
  assert_int_equal(get_v(t, "gone", "7", 1), NOTFOUND);
  assert_int_equal(count(t, "kept"), 300);
  put_v(t, "gone", "x", 1, 1); /* a new, empty collection of the same name */
  assert_int_equal(count(t, "gone"), 1);
  seen_t s = {.n = 0};
  assert_int_equal(zql_store_scan(t, "gone", NULL, 0, NULL, 0, collect, &s, NULL), 0);
  expect(&s, "78");
  commit(t);
  t = begin(f, false);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_store_drop(t, "kept", &err), ZQL_E_USAGE);
  assert_non_null(strstr(err.buf, "'kept'"));
  zql_strbuf_release(&err);
  assert_int_equal(count(t, "kept"), 300);
  zql_store_abort(t);
}

typedef struct {
  char names[600][ZQL_STORE_MAX_NAME + 1];
  int n;
} names_t;

static void add_name(void *arg, const char *name)
{
  names_t *l = arg;
  if (l->n < 600)
    strcpy(l->names[l->n], name);
  l->n++;
}

static void test_replace(void **state)
{
  fix_t *f = *state;
  const char *to = "zagg.daily", *from = "zagg.daily.__rebuild_7";
  zql_store_txn_t *t = begin(f, true);
  put_v(t, to, "x", 1, 1);
  put_v(t, to, "a", 1, 2);
  put_v(t, from, "a", 1, 10);
  put_v(t, from, "b", 1, 11);
  put_v(t, from, "c", 1, 12);
  commit(t);

  t = begin(f, true); /* aborted: nothing changes */
  assert_int_equal(zql_store_replace_collection(t, from, to, NULL), 0);
  assert_int_equal(count(t, to), 3);
  zql_store_abort(t);
  zql_store_txn_t *r = begin(f, false);
  assert_int_equal(count(r, to), 2);
  assert_int_equal(count(r, from), 3);
  assert_int_equal(get_v(r, to, "x", 1), 1);
  assert_int_equal(get_v(r, from, "b", 1), 11);

  t = begin(f, true);
  assert_int_equal(zql_store_replace_collection(t, from, to, NULL), 0);
  commit(t);
  /* the earlier reader still has the old state */
  assert_int_equal(get_v(r, to, "x", 1), 1);
  assert_int_equal(get_v(r, to, "a", 1), 2);
  zql_store_abort(r);

  r = begin(f, false);
  assert_int_equal(count(r, to), 3);
  assert_int_equal(count(r, from), 0);
  assert_int_equal(get_v(r, to, "x", 1), NOTFOUND);
  assert_int_equal(get_v(r, to, "a", 1), 10);
  assert_int_equal(get_v(r, from, "a", 1), NOTFOUND);
  seen_t s = {.n = 0};
  assert_int_equal(zql_store_scan(r, to, NULL, 0, NULL, 0, collect, &s, NULL), 0);
  expect(&s, "61 62 63");
  names_t *l = calloc(1, sizeof *l);
  assert_non_null(l);
  assert_int_equal(zql_store_collections(r, add_name, l, NULL), 0);
  assert_int_equal(l->n, 1);
  assert_string_equal(l->names[0], to);
  zql_store_abort(r);

  t = begin(f, true);
  put_v(t, from, "q", 1, 5); /* the source name is free again, and starts empty */
  assert_int_equal(count(t, from), 1);
  assert_int_equal(zql_store_replace_collection(t, to, to, NULL), ZQL_E_USAGE);
  /* a missing source is empty: the target is removed */
  assert_int_equal(zql_store_replace_collection(t, "zagg.nothing", to, NULL), 0);
  assert_int_equal(count(t, to), 0);
  l->n = 0;
  assert_int_equal(zql_store_collections(t, add_name, l, NULL), 0);
  assert_int_equal(l->n, 1);
  assert_string_equal(l->names[0], from);
  /* into a missing target */
  assert_int_equal(zql_store_replace_collection(t, from, "fresh", NULL), 0);
  assert_int_equal(get_v(t, "fresh", "q", 1), 5);
  commit(t);
  free(l);
}

static void test_collections(void **state)
{
  fix_t *f = *state;
  names_t *l = calloc(1, sizeof *l);
  assert_non_null(l);
  zql_store_txn_t *t = begin(f, true);
  assert_int_equal(zql_store_collections(t, add_name, l, NULL), 0);
  assert_int_equal(l->n, 0);
  char name[ZQL_STORE_MAX_NAME + 2];
  for (int i = 499; i >= 0; i--) {
    snprintf(name, sizeof name, "zagg.c%03d", i);
    put_v(t, name, "k", 1, i);
  }
  put_v(t, "$runs", "k", 1, 1);
  put_v(t, "\xc3\xa9t\xc3\xa9", "k", 1, 1); /* "été" */
  memset(name, 'n', ZQL_STORE_MAX_NAME);
  name[ZQL_STORE_MAX_NAME] = '\0';
  put_v(t, name, "k", 1, 1);
  commit(t);
  reopen(f);
  t = begin(f, false);
  assert_int_equal(zql_store_collections(t, add_name, l, NULL), 0);
  assert_int_equal(l->n, 503);
  assert_string_equal(l->names[0], "$runs");
  assert_string_equal(l->names[1], name);
  assert_string_equal(l->names[2], "zagg.c000");
  assert_string_equal(l->names[501], "zagg.c499");
  assert_string_equal(l->names[502], "\xc3\xa9t\xc3\xa9");
  for (int i = 1; i < l->n; i++)
    assert_true(strcmp(l->names[i - 1], l->names[i]) < 0);
  for (int i = 0; i < 500; i += 37) {
    snprintf(name, sizeof name, "zagg.c%03d", i);
    assert_int_equal(get_v(t, name, "k", 1), i);
    assert_int_equal(count(t, name), 1);
  }
  zql_store_abort(t);
  free(l);
}

/* {==== sizes ====} */

static void test_large_documents(void **state)
{
  fix_t *f = *state;
  size_t n = 1u << 20;
  uint8_t *blob = malloc(n);
  assert_non_null(blob);
  for (int d = 0; d < 3; d++) {
    for (size_t i = 0; i < n; i++)
      blob[i] = (uint8_t)(i * 31 + (size_t)d * 7 + (i >> 11));
    bson_t b = BSON_INITIALIZER;
    BSON_APPEND_INT32(&b, "v", d);
    BSON_APPEND_BINARY(&b, "state", BSON_SUBTYPE_BINARY, blob, (uint32_t)n);
    zql_store_txn_t *t = begin(f, true);
    char id[2] = {(char)('a' + d), 0};
    assert_int_equal(zql_store_put(t, "big", id, 1, &b, NULL), 0);
    commit(t);
    bson_destroy(&b);
  }
  reopen(f);
  zql_store_txn_t *t = begin(f, false);
  for (int d = 0; d < 3; d++) {
    for (size_t i = 0; i < n; i++)
      blob[i] = (uint8_t)(i * 31 + (size_t)d * 7 + (i >> 11));
    bson_t doc;
    char id[2] = {(char)('a' + d), 0};
    assert_int_equal(zql_store_get(t, "big", id, 1, &doc, NULL), 0);
    assert_int_equal(doc_v(&doc), d);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, "state"));
    uint32_t len;
    const uint8_t *data;
    bson_subtype_t st;
    bson_iter_binary(&it, &st, &len, &data);
    assert_int_equal(len, n);
    assert_memory_equal(data, blob, n);
  }
  zql_store_abort(t);
  free(blob);
}

static int count_ordered(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  int64_t *st = arg; /* [0] visited, [1] previous id (-1), [2] errors */
  if (idlen != 4) {
    st[2]++;
    return 0;
  }
  const uint8_t *p = id;
  int64_t k = (int64_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
  if (k <= st[1] || doc_v(doc) != (int)k)
    st[2]++;
  st[1] = k;
  st[0]++;
  return 0;
}

static void test_many_small(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  uint8_t id[4];
  for (uint32_t i = 0; i < 100000; i++) {
    uint32_t k = (i * 7919u) % 100000u; /* a permutation: inserts out of order */
    id[0] = (uint8_t)(k >> 24), id[1] = (uint8_t)(k >> 16), id[2] = (uint8_t)(k >> 8),
    id[3] = (uint8_t)k;
    put_v(t, "small", id, 4, (int)k);
  }
  commit(t);
  t = begin(f, false);
  assert_int_equal(count(t, "small"), 100000);
  int64_t st[3] = {0, -1, 0};
  assert_int_equal(zql_store_scan(t, "small", NULL, 0, NULL, 0, count_ordered, st, NULL), 0);
  assert_int_equal(st[0], 100000);
  assert_int_equal(st[2], 0);
  int64_t ps[3] = {0, -1, 0};
  assert_int_equal(zql_store_prefix(t, "small", "\x00\x00", 2, count_ordered, ps, NULL), 0);
  assert_int_equal(ps[0], 65536);
  assert_int_equal(ps[2], 0);
  int64_t rs[3] = {0, -1, 0};
  assert_int_equal(zql_store_scan(t, "small", "\x00\x00\x03\xe8", 4, "\x00\x00\x07\xd0", 4,
                                  count_ordered, rs, NULL),
                   0);
  assert_int_equal(rs[0], 1000); /* [1000, 2000) */
  assert_int_equal(rs[1], 1999);
  zql_store_abort(t);
}

static void test_map_growth(void **state)
{
  fix_t *f = *state;
  /* a second store whose map starts at 1 MiB */
  char data[112];
  snprintf(data, sizeof data, "%s/small", f->root);
  zql_store_lmdb_test_mapsize(1u << 20);
  zql_store_t *s = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_open_lmdb(data, &s, &err);
  zql_store_lmdb_test_mapsize(0);
  assert_int_equal(rc, 0);

  uint8_t *blob = calloc(1, 64 * 1024);
  assert_non_null(blob);
  bson_t b = BSON_INITIALIZER;
  BSON_APPEND_BINARY(&b, "b", BSON_SUBTYPE_BINARY, blob, 64 * 1024);
  int fulls = 0, done = 0;
  for (int attempt = 0; attempt < 8 && !done; attempt++) {
    zql_store_txn_t *t = NULL;
    zql_strbuf_reset(&err);
    assert_int_equal(zql_store_begin(s, true, &t, &err), 0);
    for (int i = 0; i < 64 && rc == 0; i++) { /* 4 MiB */
      char id[16];
      snprintf(id, sizeof id, "%03d", i);
      rc = zql_store_put(t, "g", id, strlen(id), &b, &err);
    }
    if (rc == 0) {
      rc = zql_store_commit(t, &err);
      done = rc == 0;
    } else {
      zql_store_abort(t);
    }
    if (rc) {
      assert_int_equal(rc, ZQL_E_IO);
      assert_non_null(strstr(err.buf, "store full"));
      fulls++;
      rc = 0;
    }
  }
  assert_true(done);
  assert_true(fulls >= 1);
  zql_store_txn_t *t = NULL;
  assert_int_equal(zql_store_begin(s, false, &t, NULL), 0);
  uint64_t n = 0;
  assert_int_equal(zql_store_count(t, "g", &n, NULL), 0);
  assert_int_equal(n, 64);
  zql_store_abort(t);
  bson_destroy(&b);
  free(blob);
  zql_strbuf_release(&err);
  zql_store_close(s);
  rm_store_files(data);
}

/* {==== errors ====} */

static void test_invalid_arguments(void **state)
{
  fix_t *f = *state;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  bson_t b = BSON_INITIALIZER, doc;
  BSON_APPEND_INT32(&b, "v", 1);
  zql_store_txn_t *t = begin(f, true);
  assert_int_equal(zql_store_put(t, NULL, "a", 1, &b, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_put(t, "", "a", 1, &b, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_put(t, "bad\xff", "a", 1, &b, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_put(t, "\xc0\x80", "a", 1, &b, NULL), ZQL_E_USAGE); /* overlong */
  char longname[ZQL_STORE_MAX_NAME + 2];
  memset(longname, 'x', sizeof longname - 1);
  longname[ZQL_STORE_MAX_NAME + 1] = '\0';
  assert_int_equal(zql_store_put(t, longname, "a", 1, &b, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_put(t, "c", "a", 0, &b, &err), ZQL_E_USAGE);
  assert_non_null(strstr(err.buf, "collection 'c'"));
  assert_int_equal(zql_store_put(t, "c", NULL, 1, &b, NULL), ZQL_E_USAGE);
  uint8_t id[ZQL_STORE_MAX_ID + 1];
  memset(id, 0xff, sizeof id);
  assert_int_equal(zql_store_put(t, "c", id, sizeof id, &b, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_put(t, "c", id, ZQL_STORE_MAX_ID, &b, NULL), 0);
  assert_int_equal(zql_store_get(t, "c", id, ZQL_STORE_MAX_ID, &doc, NULL), 0);
  assert_int_equal(zql_store_get(t, "c", id, sizeof id, &doc, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_del(t, "c", id, 0, NULL), ZQL_E_USAGE);
  /* a bound longer than any id still works */
  seen_t s = {.n = 0};
  assert_int_equal(zql_store_scan(t, "c", id, sizeof id, NULL, 0, collect, &s, NULL), 0);
  assert_int_equal(s.n, 0);
  assert_int_equal(zql_store_scan(t, "c", id, ZQL_STORE_MAX_ID, id, sizeof id, collect, &s, NULL),
                   0);
  assert_int_equal(s.n, 1);
  assert_int_equal(zql_store_prefix(t, "c", id, sizeof id, collect, &s, NULL), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(zql_store_scan(t, "c", NULL, 0, NULL, 0, NULL, NULL, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_scan(t, "c", NULL, 3, NULL, 0, collect, &s, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_prefix(t, "c", NULL, 3, collect, &s, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_put(t, "c", "a", 1, NULL, NULL), ZQL_E_USAGE);
  /* a structurally invalid document: element type 0x99 */
  static const uint8_t bad[12] = {12, 0, 0, 0, 0x99, 'a', 0, 1, 0, 0, 0, 0};
  bson_t badb;
  assert_true(bson_init_static(&badb, bad, sizeof bad));
  zql_strbuf_reset(&err);
  assert_int_equal(zql_store_put(t, "zagg.y", "a", 1, &badb, &err), ZQL_E_USAGE);
  assert_non_null(strstr(err.buf, "'zagg.y'"));
  assert_int_equal(zql_store_get(t, "c", "a", 1, NULL, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_count(t, "c", NULL, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_collections(t, NULL, NULL, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_replace_collection(t, "c", NULL, NULL), ZQL_E_USAGE);
  commit(t);

  t = begin(f, false);
  zql_strbuf_reset(&err);
  assert_int_equal(zql_store_put(t, "zagg.z", "a", 1, &b, &err), ZQL_E_USAGE);
  assert_non_null(strstr(err.buf, "needs a write transaction"));
  assert_int_equal(zql_store_del(t, "c", "a", 1, NULL), ZQL_E_USAGE);
  assert_int_equal(zql_store_replace_collection(t, "c", "d", NULL), ZQL_E_USAGE);
  zql_store_abort(t);

  /* a data directory that is a file */
  char path[112];
  snprintf(path, sizeof path, "%s/file", f->root);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fclose(fp);
  zql_store_t *s2 = NULL;
  zql_strbuf_reset(&err);
  assert_int_equal(zql_store_open_lmdb(path, &s2, &err), ZQL_E_IO);
  assert_null(s2);
  assert_non_null(strstr(err.buf, "file"));
  unlink(path);
  assert_int_equal(zql_store_open_lmdb("", &s2, NULL), ZQL_E_USAGE);
  bson_destroy(&b);
  zql_strbuf_release(&err);
}

/* Write key/value into named DB `db` of the environment in dir with raw LMDB. */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
  assert_int_equal(mdb_env_open(env, dir, 0, 0666), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
  MDB_val k = {klen, (void *)(uintptr_t)key}, v = {vlen, (void *)(uintptr_t)val};
  assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void test_corruption(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_v(t, "first", "k", 1, 1); /* collection number 1 (runtime/store_lmdb.c's layout) */
  put_v(t, "first", "m", 1, 2);
  commit(t);
  zql_store_close(f->s);
  f->s = NULL;

  char dir[112];
  snprintf(dir, sizeof dir, "%s/results", f->data);
  static const uint8_t key[9] = {0, 0, 0, 0, 0, 0, 0, 1, 'k'};
  raw_put(dir, "zql.data", key, sizeof key, "junk!", 5);
  reopen(f);
  t = begin(f, false);
  bson_t doc;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_store_get(t, "first", "k", 1, &doc, &err), ZQL_E_CORRUPT);
  assert_non_null(strstr(err.buf, "collection 'first'"));
  assert_non_null(strstr(err.buf, "id 6b"));
  assert_int_equal(get_v(t, "first", "m", 1), 2);
  seen_t s = {.n = 0};
  assert_int_equal(zql_store_scan(t, "first", NULL, 0, NULL, 0, collect, &s, NULL),
                   ZQL_E_CORRUPT);
  assert_int_equal(s.n, 0);
  zql_store_abort(t);
  /* a damaged directory entry */
  zql_store_close(f->s);
  f->s = NULL;
  raw_put(dir, "zql.dir", "first", 5, "12345", 5);
  reopen(f);
  t = begin(f, false);
  assert_int_equal(get_v(t, "first", "m", 1), ZQL_E_CORRUPT - 2000);
  zql_store_abort(t);

  /* another format */
  zql_store_close(f->s);
  f->s = NULL;
  raw_put(dir, "zql.dir", "\0format", 7, "zql-results-99", 14);
  zql_strbuf_reset(&err);
  assert_int_equal(zql_store_open_lmdb(f->data, &f->s, &err), ZQL_E_CORRUPT);
  assert_null(f->s);
  assert_non_null(strstr(err.buf, "not a zql results store"));
  raw_put(dir, "zql.dir", "\0format", 7, "zql-results-1", 13);
  reopen(f);

  /* an LMDB environment that is not ours */
  char other[112], odir[128];
  snprintf(other, sizeof other, "%s/other", f->root);
  snprintf(odir, sizeof odir, "%s/results", other);
  assert_int_equal(mkdir(other, 0777), 0);
  assert_int_equal(mkdir(odir, 0777), 0);
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_open(env, odir, 0, 0666), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
  MDB_val k = {3, (void *)(uintptr_t) "key"}, v = {3, (void *)(uintptr_t) "val"};
  assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  zql_store_t *s2 = NULL;
  zql_strbuf_reset(&err);
  assert_int_equal(zql_store_open_lmdb(other, &s2, &err), ZQL_E_CORRUPT);
  assert_null(s2);
  rm_store_files(other);
  zql_strbuf_release(&err);
}

static void test_open_twice(void **state)
{
  fix_t *f = *state;
  zql_store_t *s2 = NULL;
  char alias[128];
  snprintf(alias, sizeof alias, "%s/../data/", f->data); /* another spelling */
  assert_int_equal(zql_store_open_lmdb(alias, &s2, NULL), 0);
  assert_ptr_equal(s2, f->s);
  zql_store_txn_t *t = NULL;
  assert_int_equal(zql_store_begin(s2, true, &t, NULL), 0);
  put_v(t, "c", "a", 1, 1);
  commit(t);
  zql_store_close(s2); /* one reference left */
  t = begin(f, false);
  assert_int_equal(get_v(t, "c", "a", 1), 1);
  zql_store_abort(t);
}

/* A lazy commit is visible at once and survives a reopen (the next durable commit, or
 * the close, writes it out; only a system crash could lose it). */
static void test_commit_lazy(void **state)
{
  fix_t *f = *state;
  zql_store_txn_t *t = begin(f, true);
  put_v(t, "c", "lazy", 4, 7);
  assert_int_equal(zql_store_commit_lazy(t, NULL), 0);
  t = begin(f, false);
  assert_int_equal(get_v(t, "c", "lazy", 4), 7);
  zql_store_abort(t);
  t = begin(f, true); /* a durable commit after it */
  put_v(t, "c", "durable", 7, 8);
  commit(t);
  reopen(f);
  t = begin(f, false);
  assert_int_equal(get_v(t, "c", "lazy", 4), 7);
  assert_int_equal(get_v(t, "c", "durable", 7), 8);
  zql_store_abort(t);
}

typedef struct tseen {
  char ids[8][32];
  int n;
} tseen_t;

static int idseen_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)doc;
  tseen_t *s = arg;
  if (s->n < 8)
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%.*s", (int)idlen, (const char *)id);
  return 0;
}

/* Time-series reads: one key's documents whose bucket b is in [t1, t2). */
static void test_scan_time(void **state)
{
  fix_t *f = *state;
  static const struct { const char *id; int64_t b; } docs[] = {
      {"a/1", 1000}, {"a/2", 2000}, {"a/3", 3000}, {"ab/2", 2000}, {"b/2", 2000}, {"a/x", -1}};
  zql_store_txn_t *t = begin(f, true);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(docs); i++) {
    bson_t d = BSON_INITIALIZER;
    if (docs[i].b >= 0)
      BSON_APPEND_DATE_TIME(&d, "b", docs[i].b);
    assert_int_equal(zql_store_put(t, "zagg.x", docs[i].id, strlen(docs[i].id), &d, NULL), 0);
    bson_destroy(&d);
  }
  commit(t);
  t = begin(f, false);
  tseen_t s = {0};
  assert_int_equal(zql_outdoc_scan_time(t, "zagg.x", "a/", 2, 2000, 3001, idseen_visit, &s, NULL), 0);
  assert_int_equal(s.n, 2); /* a/2, a/3: not a/1 (before), ab/2 or b/2 (other keys), a/x (no b) */
  assert_string_equal(s.ids[0], "a/2");
  assert_string_equal(s.ids[1], "a/3");
  memset(&s, 0, sizeof s);
  assert_int_equal(zql_outdoc_scan_time(t, "zagg.x", NULL, 0, 2000, 2001, idseen_visit, &s, NULL), 0);
  assert_int_equal(s.n, 3); /* a/2, ab/2, b/2 */
  zql_store_abort(t);
}

static off_t data_size(const fix_t *f)
{
  char p[160];
  snprintf(p, sizeof p, "%s/results/data.mdb", f->data);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return st.st_size;
}

/* Commit n documents of `bytes` bytes each, ids prefix + i. */
static void put_n(fix_t *f, const char *prefix, int n, size_t bytes)
{
  uint8_t *blob = calloc(1, bytes);
  assert_non_null(blob);
  bson_t b = BSON_INITIALIZER;
  BSON_APPEND_BINARY(&b, "b", BSON_SUBTYPE_BINARY, blob, (uint32_t)bytes);
  zql_store_txn_t *t = NULL;
  assert_int_equal(zql_store_begin(f->s, true, &t, NULL), 0);
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "%s%05d", prefix, i);
    assert_int_equal(zql_store_put(t, "g", id, strlen(id), &b, NULL), 0);
  }
  assert_int_equal(zql_store_commit(t, NULL), 0);
  bson_destroy(&b);
  free(blob);
}

/* A durable commit leaves the data file written ahead of the used pages (store_lmdb.c
 * grow_ahead), so that the next commits write over zeros instead of growing the file:
 * small commits keep its size; one that outgrows the headroom extends it again. */
static void test_grow_ahead(void **state)
{
  fix_t *f = *state;
  put_n(f, "a", 10, 100);
  off_t s1 = data_size(f);
  assert_true(s1 >= (off_t)2 << 20);
  for (int i = 0; i < 20; i++)
    put_n(f, i % 2 ? "a" : "b", 50, 500); /* updates and inserts, 25 KiB each */
  assert_int_equal(data_size(f), s1);
  put_n(f, "c", 100, 40 << 10); /* 4 MiB, past the headroom */
  off_t s2 = data_size(f);
  assert_true(s2 >= s1 + ((off_t)4 << 20));
  /* the documents read back */
  zql_store_txn_t *t = NULL;
  assert_int_equal(zql_store_begin(f->s, false, &t, NULL), 0);
  uint64_t n = 0;
  assert_int_equal(zql_store_count(t, "g", &n, NULL), 0);
  assert_int_equal(n, 10 + 50 + 50 + 100 - 10);
  zql_store_abort(t);
}

int zql_unit_store(void)
{
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_put_get_del),       T(test_persist_and_abort), T(test_snapshot_same_thread),
      T(test_threads),           T(test_scan),              T(test_scan_with_updates),
      T(test_drop),              T(test_replace),           T(test_collections),
      T(test_large_documents),   T(test_many_small),        T(test_map_growth),
      T(test_invalid_arguments), T(test_corruption),        T(test_open_twice),
      T(test_commit_lazy),       T(test_scan_time),         T(test_grow_ahead),
#undef T
  };
  return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
