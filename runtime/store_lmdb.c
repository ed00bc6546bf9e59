/*
 * store_lmdb.c -- the embedded results store on LMDB (runtime services; contract in
 * runtime/store.h, design/ZQL.md R12, R15, R16).
 *
 * The run loop commits aggregate output documents here and the server reads them back;
 * DATA/results/ holds one LMDB environment (data.mdb, lock.mdb). LMDB (Howard Chu,
 * "MDB: A Memory-Mapped Database and Backend for OpenLDAP", 2011) gives copy-on-write
 * B+trees with one writer, snapshot readers that never block, and durable atomic commits.
 *
 * Layout: the main DB holds only the names of two named DBs, so no id can ever collide
 * with a DB name:
 *
 *   "zql.dir"   collection name (UTF-8, no NUL)  -> u64 number, u64 document count (BE)
 *               "\0format"                        -> "zql-results-1"
 *               "\0next"                          -> u64 next collection number (BE)
 *   "zql.data"  u64 number (BE) ++ id bytes       -> the BSON document, byte for byte
 *
 * Why not one named DB per collection: LMDB's DB handles are process-wide and fragile.
 * mdb_dbi_open must not run in two transactions at once, a handle created in an aborted
 * transaction is closed, mdb_drop(del=1) closes the handle under the feet of concurrent
 * readers, and handle slots (maxdbs) are never reclaimed, so a long-running daemon that
 * rebuilds aggregates (one "__rebuild_<run>" collection each, R15) would run out. With
 * two fixed DBs opened once, collections are unlimited, count is O(1) (kept in the
 * directory), and replace_collection is O(1) renaming: the directory entry of `to` takes
 * over `from`'s number inside the caller's write transaction. The price is that drop
 * deletes documents one by one (O(n)) instead of freeing whole pages.
 *
 * Meta keys start with 0x00 and collection names cannot contain NUL, so they never clash;
 * the meta keys sort before every name.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <lmdb.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/store.h"

#define FORMAT "zql-results-1"
#define MAXDBS 4 /* "zql.dir", "zql.data", two spare */
#define NUMLEN 8
#define KEYMAX (NUMLEN + ZQL_STORE_MAX_ID)

typedef struct lmdb_store {
  zql_store_t base;
  struct lmdb_store *next; /* the process registry */
  dev_t dev;
  ino_t ino;
  int refs;
  char *path; /* DATA/results */
  MDB_env *env;
  MDB_dbi dir, data;
  pthread_mutex_t mu; /* guards the fields below */
  unsigned ntxn;      /* open transactions in this process */
  bool writing;
  pthread_t writer;
  bool grow; /* the map filled: double it before the next transaction */
  size_t mapsize;
} lmdb_store_t;

typedef struct lmdb_txn {
  zql_store_txn_t base;
  MDB_txn *txn;
  bool write;
  zql_arena_t *copies; /* write transactions: documents returned by get */
} lmdb_txn_t;

typedef struct coll_info {
  uint64_t num;
  uint64_t count;
} coll_info_t;

static const zql_store_ops_t lmdb_ops;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lmdb_store_t *registry;
static size_t test_mapsize;

/* {==== helpers ====} */

static void st64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t ld64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static size_t default_mapsize(void)
{
#if SIZE_MAX > 0xffffffffu
  return (size_t)1 << 40; /* 1 TiB of address space; the file grows only as used */
#else
  return (size_t)1 << 30;
#endif
}

size_t zql_store_lmdb_test_mapsize(size_t bytes)
{
  size_t old = test_mapsize;
  test_mapsize = bytes;
  return old;
}

static lmdb_store_t *store_of(zql_store_txn_t *t)
{
  return (lmdb_store_t *)t->store;
}

/* Report an LMDB failure rc of operation `what` on collection coll (may be NULL). */
static int mdb_fail(lmdb_store_t *s, zql_strbuf_t *err, int rc, const char *coll,
                    const char *what)
{
  if (err) {
    zql_strbuf_addf(err, "results store '%s': ", s->path);
    if (coll)
      zql_strbuf_addf(err, "collection '%s': ", coll);
  }
  if (rc == MDB_MAP_FULL) {
    pthread_mutex_lock(&s->mu);
    s->grow = true;
    size_t size = s->mapsize;
    pthread_mutex_unlock(&s->mu);
    return zql_fail(err, ZQL_E_IO,
                "%s: store full (map size %zu bytes); the map grows before the next "
                "transaction, abort and retry",
                what, size);
  }
  if (rc == ENOMEM) /* also: no address space left for the map */
    return zql_fail(err, ZQL_E_NOMEM, "%s: %s", what, mdb_strerror(rc));
  if (rc == MDB_READERS_FULL)
    return zql_fail(err, ZQL_E_IO, "%s: too many concurrent readers: %s", what, mdb_strerror(rc));
  return zql_fail(err, ZQL_E_IO, "%s: %s", what, mdb_strerror(rc));
}

static int check_name(lmdb_store_t *s, const char *coll, zql_strbuf_t *err)
{
  if (!coll)
    return zql_fail(err, ZQL_E_USAGE, "results store '%s': collection name is NULL", s->path);
  size_t n = strlen(coll);
  if (n == 0 || n > ZQL_STORE_MAX_NAME)
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': collection name '%.40s' must have 1 to %d bytes (has %zu)",
                s->path, coll, ZQL_STORE_MAX_NAME, n);
  if (!bson_utf8_validate(coll, n, false))
    return zql_fail(err, ZQL_E_USAGE, "results store '%s': collection name is not valid UTF-8",
                s->path);
  return 0;
}

static int check_id(lmdb_store_t *s, const char *coll, const void *id, size_t idlen,
                    zql_strbuf_t *err)
{
  if (!id || idlen == 0 || idlen > ZQL_STORE_MAX_ID)
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': collection '%s': an id must have 1 to %d bytes (has %zu%s)",
                s->path, coll, ZQL_STORE_MAX_ID, idlen, id ? "" : ", NULL");
  return 0;
}

static int check_write(lmdb_txn_t *t, const char *coll, const char *what, zql_strbuf_t *err)
{
  if (!t->write)
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': collection '%s': %s needs a write transaction",
                store_of(&t->base)->path, coll ? coll : "", what);
  return 0;
}

/* Append up to 32 id bytes in hex to a message. */
static void add_id(zql_strbuf_t *err, const uint8_t *id, size_t n)
{
  if (!err)
    return;
  for (size_t i = 0; i < n && i < 32; i++)
    zql_strbuf_addf(err, "%02x", id[i]);
  if (n > 32)
    zql_strbuf_adds(err, "...");
}

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

/* The directory entry of coll: 0, ZQL_STORE_NOTFOUND or < 0. */
static int dir_get(lmdb_txn_t *t, const char *coll, coll_info_t *ci, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(&t->base);
  MDB_val k = {strlen(coll), (void *)(uintptr_t)coll}, v;
  int rc = mdb_get(t->txn, s->dir, &k, &v);
  if (rc == MDB_NOTFOUND)
    return ZQL_STORE_NOTFOUND;
  if (rc)
    return mdb_fail(s, err, rc, coll, "reading the directory");
  if (v.mv_size != 16)
    return zql_fail(err, ZQL_E_CORRUPT,
                "results store '%s': collection '%s': directory entry has %zu bytes, not 16",
                s->path, coll, v.mv_size);
  ci->num = ld64(v.mv_data);
  ci->count = ld64((const uint8_t *)v.mv_data + 8);
  return 0;
}

static int dir_put(lmdb_txn_t *t, const char *coll, const coll_info_t *ci, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(&t->base);
  uint8_t buf[16];
  st64(buf, ci->num);
  st64(buf + 8, ci->count);
  MDB_val k = {strlen(coll), (void *)(uintptr_t)coll}, v = {sizeof buf, buf};
  int rc = mdb_put(t->txn, s->dir, &k, &v, 0);
  return rc ? mdb_fail(s, err, rc, coll, "writing the directory") : 0;
}

static int dir_del(lmdb_txn_t *t, const char *coll, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(&t->base);
  MDB_val k = {strlen(coll), (void *)(uintptr_t)coll};
  int rc = mdb_del(t->txn, s->dir, &k, NULL);
  return rc ? mdb_fail(s, err, rc, coll, "writing the directory") : 0;
}

/* Create the directory entry of coll with a fresh number and no documents. */
static int dir_create(lmdb_txn_t *t, const char *coll, coll_info_t *ci, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(&t->base);
  MDB_val k = {5, (void *)(uintptr_t) "\0next"}, v;
  int rc = mdb_get(t->txn, s->dir, &k, &v);
  if (rc)
    return rc == MDB_NOTFOUND
               ? zql_fail(err, ZQL_E_CORRUPT, "results store '%s': the directory has no counter",
                      s->path)
               : mdb_fail(s, err, rc, coll, "reading the directory");
  if (v.mv_size != 8)
    return zql_fail(err, ZQL_E_CORRUPT, "results store '%s': the directory counter has %zu bytes",
                s->path, v.mv_size);
  uint8_t buf[8];
  ci->num = ld64(v.mv_data);
  ci->count = 0;
  st64(buf, ci->num + 1);
  v = (MDB_val){sizeof buf, buf};
  if ((rc = mdb_put(t->txn, s->dir, &k, &v, 0)))
    return mdb_fail(s, err, rc, coll, "writing the directory");
  return dir_put(t, coll, ci, err);
}

/* Delete every document of collection number num. */
static int delete_all(lmdb_txn_t *t, const char *coll, uint64_t num, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(&t->base);
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, s->data, &c);
  if (rc)
    return mdb_fail(s, err, rc, coll, "opening a cursor");
  uint8_t lo[NUMLEN];
  st64(lo, num);
  for (;;) {
    /* Seek afresh after each delete: LMDB's cursor position after mdb_cursor_del has
     * had edge cases across versions; a seek is O(log n) and always right. */
    MDB_val k = {NUMLEN, lo}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size < NUMLEN || memcmp(k.mv_data, lo, NUMLEN)))) {
      rc = 0;
      break;
    }
    if (rc || (rc = mdb_cursor_del(c, 0)))
      break;
  }
  mdb_cursor_close(c);
  return rc ? mdb_fail(s, err, rc, coll, "deleting documents") : 0;
}

/* Build the data key of (num, id) in buf (KEYMAX bytes). */
static MDB_val data_key(uint8_t *buf, uint64_t num, const void *id, size_t idlen)
{
  st64(buf, num);
  if (idlen)
    memcpy(buf + NUMLEN, id, idlen);
  return (MDB_val){NUMLEN + idlen, buf};
}

/* Check that a stored value is a BSON document and view it in *doc. */
static int view_doc(lmdb_txn_t *t, const char *coll, const MDB_val *k, const MDB_val *v,
                    bson_t *doc, zql_strbuf_t *err)
{
  if (!bson_init_static(doc, v->mv_data, v->mv_size)) {
    lmdb_store_t *s = store_of(&t->base);
    zql_fail(err, ZQL_E_CORRUPT, "results store '%s': collection '%s': the document with id ",
         s->path, coll);
    add_id(err, (const uint8_t *)k->mv_data + NUMLEN, k->mv_size - NUMLEN);
    return zql_fail(err, ZQL_E_CORRUPT, " is not a BSON document (%zu bytes)", v->mv_size);
  }
  return 0;
}

/* {==== transactions ====} */

static int lmdb_begin(zql_store_t *base, bool write, zql_store_txn_t **out, zql_strbuf_t *err)
{
  lmdb_store_t *s = (lmdb_store_t *)base;
  *out = NULL;
  lmdb_txn_t *t = zql_calloc(1, sizeof *t);
  if (!t)
    return ZQL_E_NOMEM;
  t->base.store = base;
  t->write = write;
  if (write && !(t->copies = zql_arena_create(NULL))) {
    zql_free(t);
    return ZQL_E_NOMEM;
  }

  int rc = 0;
  pthread_mutex_lock(&s->mu);
  if (write && s->writing && pthread_equal(s->writer, pthread_self())) {
    pthread_mutex_unlock(&s->mu);
    zql_arena_delete(t->copies);
    zql_free(t);
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': this thread already has a write transaction", s->path);
  }
  if (s->grow && s->ntxn == 0) {
    /* mdb_env_set_mapsize needs no transaction open in the process: ntxn == 0 under mu,
     * and every begin passes here first. */
    size_t size = s->mapsize * 2 > s->mapsize ? s->mapsize * 2 : s->mapsize;
    if ((rc = mdb_env_set_mapsize(s->env, size)) == 0) {
      s->mapsize = size;
      s->grow = false;
    }
  }
  s->ntxn++;
  pthread_mutex_unlock(&s->mu);
  if (rc)
    goto failed;

  for (int attempt = 0;; attempt++) {
    rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc == 0 || attempt > 0)
      break;
    if (rc == MDB_READERS_FULL) {
      int dead = 0;
      mdb_reader_check(s->env, &dead); /* slots of dead processes */
      if (dead == 0)
        break;
    } else if (rc == MDB_MAP_RESIZED) {
      /* Another process grew the map: adopt its size when nothing else is open here. */
      pthread_mutex_lock(&s->mu);
      int r2 = s->ntxn == 1 ? mdb_env_set_mapsize(s->env, 0) : rc;
      if (r2 == 0) {
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        s->mapsize = info.me_mapsize;
      }
      pthread_mutex_unlock(&s->mu);
      if (r2)
        break;
    } else {
      break;
    }
  }
  if (rc)
    goto failed;
  if (write) {
    pthread_mutex_lock(&s->mu);
    s->writing = true;
    s->writer = pthread_self();
    pthread_mutex_unlock(&s->mu);
  }
  *out = &t->base;
  return 0;

failed:
  pthread_mutex_lock(&s->mu);
  s->ntxn--;
  pthread_mutex_unlock(&s->mu);
  zql_arena_delete(t->copies);
  zql_free(t);
  return mdb_fail(s, err, rc, NULL, write ? "beginning a write transaction"
                                          : "beginning a read transaction");
}

static void txn_free(lmdb_txn_t *t)
{
  lmdb_store_t *s = store_of(&t->base);
  pthread_mutex_lock(&s->mu);
  s->ntxn--;
  if (t->write)
    s->writing = false;
  pthread_mutex_unlock(&s->mu);
  zql_arena_delete(t->copies);
  zql_free(t);
}

static int lmdb_begin(zql_store_t *base, bool write, zql_store_txn_t **out, zql_strbuf_t *err);
static void lmdb_abort(zql_store_txn_t *base);

/* Headroom of written zeros past the used pages: a quarter of them, 1 to 64 MiB. */
static uint64_t headroom(uint64_t used)
{
  uint64_t h = used / 4, lo = (uint64_t)1 << 20, hi = (uint64_t)64 << 20;
  return h < lo ? lo : h > hi ? hi : h;
}

/* Keep the data file ahead of LMDB's used pages with zeros really written. LMDB appends
 * the pages it cannot take from its free list at the end of the file, and a commit's
 * fdatasync then also has to commit the file system's journal (new blocks, a new size):
 * for an incremental run's 200 documents, 1.2 ms instead of 0.7. Pages written over zeros
 * already on disk change no metadata. So after a durable commit that leaves less than
 * headroom(used) past the used pages -- a quarter of them, 1 to 64 MiB -- the file is
 * extended to twice that and synced: the commit that used the room up pays for the ones
 * after it (like SQLite's SQLITE_FCNTL_CHUNK_SIZE, the file grows in steps). Best effort:
 * on failure (a full disk) LMDB extends the file itself as before. Done under the write
 * lock, so no other writer can be putting pages there. */
static void grow_ahead(lmdb_store_t *s)
{
  int fd;
  struct stat st;
  MDB_envinfo info;
  MDB_stat ms;
  if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &st) || mdb_env_info(s->env, &info) ||
      mdb_env_stat(s->env, &ms))
    return;
  uint64_t used = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
  if ((uint64_t)st.st_size >= used + headroom(used))
    return;
  zql_store_txn_t *x;
  if (lmdb_begin(&s->base, true, &x, NULL) != 0)
    return;
  /* again under the lock: another process may have committed or grown it meanwhile */
  if (mdb_env_info(s->env, &info) == 0 && fstat(fd, &st) == 0) {
    used = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    uint64_t h = headroom(used);
    uint64_t to = (used + 2 * h + ((1u << 20) - 1)) & ~(uint64_t)((1u << 20) - 1);
    if (to > info.me_mapsize)
      to = info.me_mapsize;
    static const uint8_t zeros[64 << 10];
    uint64_t at = (uint64_t)st.st_size;
    bool ok = at < used + h;
    while (ok && at < to) {
      size_t n = to - at < sizeof zeros ? (size_t)(to - at) : sizeof zeros;
      ssize_t w = pwrite(fd, zeros, n, (off_t)at);
      if (w < 0 && errno == EINTR)
        continue;
      ok = w > 0;
      at += ok ? (uint64_t)w : 0;
    }
    if (at > (uint64_t)st.st_size)
      fdatasync(fd);
  }
  lmdb_abort(x);
}

static int lmdb_commit(zql_store_txn_t *base, zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  int rc = mdb_txn_commit(t->txn); /* frees the MDB_txn, also on failure */
  bool write = t->write;
  txn_free(t);
  if (rc)
    return mdb_fail(s, err, rc, NULL, "committing");
  if (write)
    grow_ahead(s);
  return 0;
}

/* A commit that does not wait for the disk: MDB_NOSYNC for this one commit (LMDB lets the
 * flag change at any time; we hold the write lock, so no other commit of this environment
 * runs meanwhile). The next durable commit's fdatasync covers its pages too. */
static int lmdb_commit_lazy(zql_store_txn_t *base, zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  mdb_env_set_flags(s->env, MDB_NOSYNC, 1);
  int rc = mdb_txn_commit(t->txn);
  mdb_env_set_flags(s->env, MDB_NOSYNC, 0);
  txn_free(t);
  return rc ? mdb_fail(s, err, rc, NULL, "committing") : 0;
}

static void lmdb_abort(zql_store_txn_t *base)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  mdb_txn_abort(t->txn);
  txn_free(t);
}

/* {==== documents ====} */

static int get_doc(zql_store_txn_t *base, const char *coll, const void *id, size_t idlen,
                   bson_t *doc, bool copy, zql_strbuf_t *err);

static int lmdb_get(zql_store_txn_t *base, const char *coll, const void *id, size_t idlen,
                    bson_t *doc, zql_strbuf_t *err)
{
  return get_doc(base, coll, id, idlen, doc, true, err);
}

/* LMDB's own pointer: valid until the next update in the transaction (mdb_get). */
static int lmdb_peek(zql_store_txn_t *base, const char *coll, const void *id, size_t idlen,
                     bson_t *doc, zql_strbuf_t *err)
{
  return get_doc(base, coll, id, idlen, doc, false, err);
}

static int get_doc(zql_store_txn_t *base, const char *coll, const void *id, size_t idlen,
                   bson_t *doc, bool copy_out, zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  coll_info_t ci;
  int rc;
  if ((rc = check_name(s, coll, err)) || (rc = check_id(s, coll, id, idlen, err)))
    return rc;
  if (!doc)
    return zql_fail(err, ZQL_E_USAGE, "results store '%s': collection '%s': get without a document",
                s->path, coll);
  if ((rc = dir_get(t, coll, &ci, err)))
    return rc;
  uint8_t kb[KEYMAX];
  MDB_val k = data_key(kb, ci.num, id, idlen), v;
  rc = mdb_get(t->txn, s->data, &k, &v);
  if (rc == MDB_NOTFOUND)
    return ZQL_STORE_NOTFOUND;
  if (rc)
    return mdb_fail(s, err, rc, coll, "reading a document");
  if (t->write && copy_out) {
    /* In a write transaction LMDB's pointer dies at the next update; the contract says
     * "until the transaction ends", so hand out a copy owned by the transaction. */
    void *copy = zql_arena_alloc(t->copies, v.mv_size ? v.mv_size : 1);
    if (!copy)
      return ZQL_E_NOMEM;
    memcpy(copy, v.mv_data, v.mv_size);
    v.mv_data = copy;
  }
  return view_doc(t, coll, &k, &v, doc, err);
}

static int lmdb_put(zql_store_txn_t *base, const char *coll, const void *id, size_t idlen,
                    const bson_t *doc, zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  coll_info_t ci;
  int rc;
  if ((rc = check_name(s, coll, err)) || (rc = check_write(t, coll, "put", err)) ||
      (rc = check_id(s, coll, id, idlen, err)))
    return rc;
  /* The framing and the top-level elements only: documents come from zql's own builders
   * (bson_append_*), and a deep walk would cost as much as the write for the large saved
   * states of exact sets. */
  bson_iter_t it;
  bool ok = doc && bson_iter_init(&it, doc);
  while (ok && bson_iter_next(&it))
    ;
  if (!ok || it.err_off)
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': collection '%s': put of an invalid BSON document "
                "(at byte %u)", s->path, coll, ok ? it.err_off : 0u);
  rc = dir_get(t, coll, &ci, err);
  if (rc == ZQL_STORE_NOTFOUND)
    rc = dir_create(t, coll, &ci, err);
  if (rc)
    return rc;
  uint8_t kb[KEYMAX];
  MDB_val k = data_key(kb, ci.num, id, idlen);
  MDB_val v = {doc->len, (void *)(uintptr_t)bson_get_data(doc)};
  rc = mdb_put(t->txn, s->data, &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) { /* overwrite: the count stays */
    v = (MDB_val){doc->len, (void *)(uintptr_t)bson_get_data(doc)};
    rc = mdb_put(t->txn, s->data, &k, &v, 0);
    return rc ? mdb_fail(s, err, rc, coll, "writing a document") : 0;
  }
  if (rc)
    return mdb_fail(s, err, rc, coll, "writing a document");
  ci.count++;
  return dir_put(t, coll, &ci, err);
}

static int lmdb_del(zql_store_txn_t *base, const char *coll, const void *id, size_t idlen,
                    zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  coll_info_t ci;
  int rc;
  if ((rc = check_name(s, coll, err)) || (rc = check_write(t, coll, "del", err)) ||
      (rc = check_id(s, coll, id, idlen, err)) || (rc = dir_get(t, coll, &ci, err)))
    return rc;
  uint8_t kb[KEYMAX];
  MDB_val k = data_key(kb, ci.num, id, idlen);
  rc = mdb_del(t->txn, s->data, &k, NULL);
  if (rc == MDB_NOTFOUND)
    return ZQL_STORE_NOTFOUND;
  if (rc)
    return mdb_fail(s, err, rc, coll, "deleting a document");
  if (ci.count > 0)
    ci.count--;
  return dir_put(t, coll, &ci, err);
}

/* {==== scans ====} */

/* Visit the ids >= lo (lolen 0: all) that start with hi (is_prefix) or are < hi (hi
 * NULL: no upper bound). */
static int walk(lmdb_txn_t *t, const char *coll, const uint8_t *lo, size_t lolen,
                const uint8_t *hi, size_t hilen, bool is_prefix, zql_store_visit_fn fn,
                void *arg, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(&t->base);
  coll_info_t ci;
  int rc = dir_get(t, coll, &ci, err);
  if (rc == ZQL_STORE_NOTFOUND)
    return 0;
  if (rc)
    return rc;
  MDB_cursor *c;
  if ((rc = mdb_cursor_open(t->txn, s->data, &c)))
    return mdb_fail(s, err, rc, coll, "opening a cursor");

  uint8_t num[NUMLEN], last[KEYMAX];
  st64(num, ci.num);
  zql_strbuf_t copy = ZQL_STRBUF_INIT; /* write transactions: the document fn sees */
  /* No id is longer than ZQL_STORE_MAX_ID, so seeking a truncated lo only lets through
   * ids < lo, which the loop skips. */
  MDB_val k = data_key(last, ci.num, lo, lolen > ZQL_STORE_MAX_ID ? ZQL_STORE_MAX_ID : lolen);
  MDB_val v;
  rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  int result = 0;
  for (;;) {
    if (rc == MDB_NOTFOUND)
      break;
    if (rc) {
      result = mdb_fail(s, err, rc, coll, "scanning");
      break;
    }
    if (k.mv_size < NUMLEN || memcmp(k.mv_data, num, NUMLEN))
      break; /* past the collection */
    const uint8_t *id = (const uint8_t *)k.mv_data + NUMLEN;
    size_t idlen = k.mv_size - NUMLEN;
    if (lolen && cmp_bytes(id, idlen, lo, lolen) < 0) {
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
      continue;
    }
    if (is_prefix ? idlen < hilen || (hilen && memcmp(id, hi, hilen))
                  : hi && cmp_bytes(id, idlen, hi, hilen) >= 0)
      break;
    bson_t doc;
    MDB_val dv = v;
    if (t->write) {
      /* fn may update the store, which moves LMDB's pages: give it copies and seek back
       * to the last key afterwards. */
      memcpy(last, k.mv_data, k.mv_size);
      id = last + NUMLEN;
      zql_strbuf_reset(&copy);
      zql_strbuf_add(&copy, v.mv_data, v.mv_size);
      if (copy.oom) {
        result = ZQL_E_NOMEM;
        break;
      }
      dv.mv_data = copy.buf;
    }
    if ((result = view_doc(t, coll, &k, &dv, &doc, err)))
      break;
    if ((result = fn(arg, id, idlen, &doc)))
      break;
    if (t->write) {
      k = (MDB_val){NUMLEN + idlen, last};
      rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
      if (rc == 0 && k.mv_size == NUMLEN + idlen && !memcmp(k.mv_data, last, k.mv_size))
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    } else {
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
  }
  mdb_cursor_close(c);
  zql_strbuf_release(&copy);
  return result;
}

static int lmdb_scan(zql_store_txn_t *base, const char *coll, const void *from, size_t fromlen,
                     const void *to, size_t tolen, zql_store_visit_fn fn, void *arg,
                     zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(base);
  int rc;
  if ((rc = check_name(s, coll, err)))
    return rc;
  if (!fn || (!from && fromlen) || (!to && tolen))
    return zql_fail(err, ZQL_E_USAGE, "results store '%s': collection '%s': invalid scan arguments",
                s->path, coll);
  return walk((lmdb_txn_t *)base, coll, from, from ? fromlen : 0, to, tolen, false, fn, arg,
              err);
}

static int lmdb_prefix(zql_store_txn_t *base, const char *coll, const void *prefix,
                       size_t prefixlen, zql_store_visit_fn fn, void *arg, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(base);
  int rc;
  if ((rc = check_name(s, coll, err)))
    return rc;
  if (!fn || (!prefix && prefixlen))
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': collection '%s': invalid prefix scan arguments", s->path,
                coll);
  if (prefixlen > ZQL_STORE_MAX_ID)
    return 0; /* no id is that long */
  return walk((lmdb_txn_t *)base, coll, prefix, prefixlen, prefix, prefixlen, true, fn, arg,
              err);
}

/* {==== collections ====} */

static int lmdb_count(zql_store_txn_t *base, const char *coll, uint64_t *n, zql_strbuf_t *err)
{
  lmdb_store_t *s = store_of(base);
  coll_info_t ci;
  int rc;
  if ((rc = check_name(s, coll, err)))
    return rc;
  if (!n)
    return zql_fail(err, ZQL_E_USAGE, "results store '%s': collection '%s': count without a result",
                s->path, coll);
  *n = 0;
  rc = dir_get((lmdb_txn_t *)base, coll, &ci, err);
  if (rc == 0)
    *n = ci.count;
  return rc == ZQL_STORE_NOTFOUND ? 0 : rc;
}

static int lmdb_drop(zql_store_txn_t *base, const char *coll, zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  coll_info_t ci;
  int rc;
  if ((rc = check_name(s, coll, err)) || (rc = check_write(t, coll, "drop", err)) ||
      (rc = dir_get(t, coll, &ci, err)))
    return rc;
  if ((rc = delete_all(t, coll, ci.num, err)))
    return rc;
  return dir_del(t, coll, err);
}

static int lmdb_replace(zql_store_txn_t *base, const char *from, const char *to,
                        zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  coll_info_t fi, ti;
  int rc;
  if ((rc = check_name(s, from, err)) || (rc = check_name(s, to, err)) ||
      (rc = check_write(t, to, "replace_collection", err)))
    return rc;
  if (!strcmp(from, to))
    return zql_fail(err, ZQL_E_USAGE,
                "results store '%s': collection '%s' cannot replace itself", s->path, to);
  int fr = dir_get(t, from, &fi, err);
  if (fr < 0)
    return fr;
  int tr = dir_get(t, to, &ti, err);
  if (tr < 0)
    return tr;
  if (tr == 0 && (rc = delete_all(t, to, ti.num, err)))
    return rc;
  if (fr == 0) {
    if ((rc = dir_put(t, to, &fi, err)))
      return rc;
    return dir_del(t, from, err);
  }
  return tr == 0 ? dir_del(t, to, err) : 0;
}

static int lmdb_collections(zql_store_txn_t *base, void (*fn)(void *arg, const char *name),
                            void *arg, zql_strbuf_t *err)
{
  lmdb_txn_t *t = (lmdb_txn_t *)base;
  lmdb_store_t *s = store_of(base);
  if (!fn)
    return zql_fail(err, ZQL_E_USAGE, "results store '%s': collections without a callback",
                s->path);
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, s->dir, &c);
  if (rc)
    return mdb_fail(s, err, rc, NULL, "opening a cursor");
  MDB_val k = {1, (void *)(uintptr_t) "\001"}, v; /* past the 0x00 meta keys */
  char name[ZQL_STORE_MAX_NAME + 1];
  int result = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size == 0 || k.mv_size > ZQL_STORE_MAX_NAME) {
      result = zql_fail(err, ZQL_E_CORRUPT, "results store '%s': a directory key has %zu bytes",
                    s->path, k.mv_size);
      break;
    }
    memcpy(name, k.mv_data, k.mv_size);
    name[k.mv_size] = '\0';
    fn(arg, name);
  }
  if (!result && rc != MDB_NOTFOUND)
    result = mdb_fail(s, err, rc, NULL, "listing collections");
  mdb_cursor_close(c);
  return result;
}

/* {==== open and close ====} */

/* Open the two DBs, creating them and the meta keys in a fresh environment. */
static int open_dbs(lmdb_store_t *s, zql_strbuf_t *err)
{
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc)
    return mdb_fail(s, err, rc, NULL, "opening");
  if ((rc = mdb_dbi_open(txn, "zql.dir", 0, &s->dir)) == 0 &&
      (rc = mdb_dbi_open(txn, "zql.data", 0, &s->data)) == 0)
    rc = mdb_txn_commit(txn); /* a read transaction must commit to keep its handles */
  else
    mdb_txn_abort(txn);
  if (rc == MDB_NOTFOUND) { /* a new store (or not ours: then the main DB is not empty) */
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
      return mdb_fail(s, err, rc, NULL, "creating");
    MDB_dbi main;
    MDB_stat st;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) == 0 && (rc = mdb_stat(txn, main, &st)) == 0 &&
        st.ms_entries > 0) {
      mdb_txn_abort(txn);
      return zql_fail(err, ZQL_E_CORRUPT, "'%s' is an LMDB environment but not a zql results store",
                  s->path);
    }
    uint8_t one[8];
    st64(one, 1);
    MDB_val fk = {7, (void *)(uintptr_t) "\0format"}, fv = {strlen(FORMAT), (void *)(uintptr_t)FORMAT};
    MDB_val nk = {5, (void *)(uintptr_t) "\0next"}, nv = {8, one};
    if (rc || (rc = mdb_dbi_open(txn, "zql.dir", MDB_CREATE, &s->dir)) ||
        (rc = mdb_dbi_open(txn, "zql.data", MDB_CREATE, &s->data)) ||
        (rc = mdb_put(txn, s->dir, &fk, &fv, 0)) || (rc = mdb_put(txn, s->dir, &nk, &nv, 0))) {
      mdb_txn_abort(txn);
      return mdb_fail(s, err, rc, NULL, "creating");
    }
    if ((rc = mdb_txn_commit(txn)))
      return mdb_fail(s, err, rc, NULL, "creating");
  } else if (rc) {
    return mdb_fail(s, err, rc, NULL, "opening");
  }

  /* The format check. */
  if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)))
    return mdb_fail(s, err, rc, NULL, "opening");
  MDB_val fk = {7, (void *)(uintptr_t) "\0format"}, fv;
  rc = mdb_get(txn, s->dir, &fk, &fv);
  bool ok = rc == 0 && fv.mv_size == strlen(FORMAT) && !memcmp(fv.mv_data, FORMAT, fv.mv_size);
  mdb_txn_abort(txn);
  if (rc && rc != MDB_NOTFOUND)
    return mdb_fail(s, err, rc, NULL, "opening");
  if (!ok)
    return zql_fail(err, ZQL_E_CORRUPT, "'%s' is not a zql results store of format '%s'", s->path,
                FORMAT);
  return 0;
}

static int make_dir(const char *path, zql_strbuf_t *err)
{
  if (mkdir(path, 0777) == 0 || errno == EEXIST)
    return 0;
  return zql_fail(err, ZQL_E_IO, "cannot create directory '%s': %s", path, strerror(errno));
}

static void store_free(lmdb_store_t *s)
{
  if (s->env)
    mdb_env_close(s->env);
  pthread_mutex_destroy(&s->mu);
  zql_free(s->path);
  zql_free(s);
}

int zql_store_open_lmdb(const char *data_dir, zql_store_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  if (!data_dir || !*data_dir)
    return zql_fail(err, ZQL_E_USAGE, "results store: no data directory");
  zql_strbuf_t path = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&path, "%s/results", data_dir);
  if (path.oom) {
    zql_strbuf_release(&path);
    return ZQL_E_NOMEM;
  }
  int rc;
  struct stat st;
  if ((rc = make_dir(data_dir, err)) || (rc = make_dir(path.buf, err))) {
    zql_strbuf_release(&path);
    return rc;
  }
  if (stat(path.buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
    rc = zql_fail(err, ZQL_E_IO, "results store '%s': not a directory: %s", path.buf,
              errno ? strerror(errno) : "");
    zql_strbuf_release(&path);
    return rc;
  }

  pthread_mutex_lock(&registry_mu);
  for (lmdb_store_t *o = registry; o; o = o->next)
    if (o->dev == st.st_dev && o->ino == st.st_ino) {
      o->refs++;
      pthread_mutex_unlock(&registry_mu);
      zql_strbuf_release(&path);
      *out = &o->base;
      return 0;
    }

  lmdb_store_t *s = zql_calloc(1, sizeof *s);
  if (!s) {
    pthread_mutex_unlock(&registry_mu);
    zql_strbuf_release(&path);
    return ZQL_E_NOMEM;
  }
  s->base.ops = &lmdb_ops;
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->refs = 1;
  pthread_mutex_init(&s->mu, NULL);
  s->path = zql_strbuf_detach(&path, NULL);
  if (!s->path) {
    pthread_mutex_unlock(&registry_mu);
    store_free(s);
    return ZQL_E_NOMEM;
  }

  s->mapsize = test_mapsize ? test_mapsize : default_mapsize();
  MDB_envinfo info;
  int dead = 0;
  if ((rc = mdb_env_create(&s->env))) {
    s->env = NULL;
    goto mdb_failed;
  }
  /* MDB_NOTLS: read transactions are not tied to a thread's reader slot, so one thread
   * can hold several, and a read and a write one. No MDB_NOSYNC: a commit's pages are
   * fdatasynced before it returns. MDB_NOMETASYNC: its meta page (the switch to the new
   * state) is written but flushed by the next commit's fdatasync (or the kernel), which
   * saves the second synchronous write of every commit. The store stays consistent
   * (LMDB's ACI); a machine crash -- not a process crash -- may take back the last
   * commit, and with it the watermark: the run is then done again from the durable event
   * log, to the same result (docs/incremental.md, "Guarantees"). */
#ifdef __GLIBC__
  /* mdb_env_open callocs a 2 MiB dirty-page list. Served from the heap's free top (zql
   * pads the heap by 16 MiB) calloc clears it with memset, 512 page faults, 0.7 ms of
   * every `zql agg run`; trimming the top first makes it an mmap, zeroed by the kernel
   * and touched only where LMDB uses it. */
  malloc_trim(0);
#endif
  if ((rc = mdb_env_set_maxdbs(s->env, MAXDBS)) ||
      (rc = mdb_env_set_mapsize(s->env, s->mapsize)) ||
      (rc = mdb_env_open(s->env, s->path, MDB_NOTLS | MDB_NOMETASYNC, 0666)) ||
      (rc = mdb_reader_check(s->env, &dead)) || (rc = mdb_env_info(s->env, &info)))
    goto mdb_failed;
  s->mapsize = info.me_mapsize; /* at least what the file already uses */
  if (mdb_env_get_maxkeysize(s->env) < KEYMAX) {
    rc = zql_fail(err, ZQL_E_IO, "results store '%s': LMDB's key size limit is %d, zql needs %d",
              s->path, mdb_env_get_maxkeysize(s->env), KEYMAX);
    goto failed;
  }
  if ((rc = open_dbs(s, err)))
    goto failed;
  s->next = registry;
  registry = s;
  pthread_mutex_unlock(&registry_mu);
  *out = &s->base;
  return 0;

mdb_failed:
  rc = mdb_fail(s, err, rc, NULL, "opening");
failed:
  pthread_mutex_unlock(&registry_mu);
  store_free(s);
  return rc;
}

static void lmdb_close(zql_store_t *base)
{
  lmdb_store_t *s = (lmdb_store_t *)base;
  pthread_mutex_lock(&registry_mu);
  if (--s->refs > 0) {
    pthread_mutex_unlock(&registry_mu);
    return;
  }
  for (lmdb_store_t **p = &registry; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  pthread_mutex_unlock(&registry_mu);
  if (s->ntxn)
    ZQL_BUG("results store '%s' closed with %u transactions open", s->path, s->ntxn);
  store_free(s);
}

static const zql_store_ops_t lmdb_ops = {
    .name = "lmdb",
    .close = lmdb_close,
    .begin = lmdb_begin,
    .commit = lmdb_commit,
    .commit_lazy = lmdb_commit_lazy,
    .abort = lmdb_abort,
    .get = lmdb_get,
    .peek = lmdb_peek,
    .put = lmdb_put,
    .del = lmdb_del,
    .scan = lmdb_scan,
    .prefix = lmdb_prefix,
    .count = lmdb_count,
    .drop = lmdb_drop,
    .replace_collection = lmdb_replace,
    .collections = lmdb_collections,
};
