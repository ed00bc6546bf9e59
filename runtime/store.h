/*
 * store.h -- the results store: named collections of BSON documents keyed by binary ids
 * (runtime services; design/ZQL.md R12, R15, R16).
 *
 * Incremental aggregates keep their output documents {_id, value, state, k, b, tz, _hw,
 * _rev, _late} here, next to the bookkeeping collections ("$catalog", "$runs",
 * "$watermarks", ...). The interface is a vtable so that a MongoDB backend can implement
 * it later; the embedded backend is LMDB (runtime/store_lmdb.c), opened with
 * zql_store_open_lmdb().
 *
 * Model
 *  - A collection is named by any valid UTF-8 string of 1..255 bytes without NUL
 *    ("zagg.pageviews_daily", "$runs"). It exists from its first put until it is dropped
 *    (or replaced away); deleting its last document leaves it listed, empty.
 *  - An id is 1..ZQL_STORE_MAX_ID bytes of anything (0x00 and 0xFF included); documents are
 *    ordered by id bytes (memcmp, a shorter id before its extensions), which is the order
 *    of scan and prefix. A document is a valid BSON document, stored byte for byte.
 *  - Everything happens inside a transaction. A backend only has to make each single
 *    document operation atomic (MongoDB without transactions; R12's conditional per-doc
 *    commit is what makes runs correct); LMDB makes whole transactions atomic and durable
 *    (commit returns after fdatasync). Callers must therefore not rely on multi-document
 *    atomicity for correctness, except for replace_collection, which every backend makes
 *    atomic for readers (the R15 rebuild swap).
 *
 * Threads and transactions
 *  - Any number of read transactions run concurrently (in any threads) with one write
 *    transaction; a read transaction sees the snapshot of its begin and never blocks.
 *  - One write transaction at a time per store: begin(write) in another thread (or
 *    process) waits for the current writer to finish. A second begin(write) in the thread
 *    that already has one open is refused (ZQL_E_USAGE) instead of deadlocking.
 *  - A thread may hold several read transactions and one write transaction at once (LMDB
 *    is opened with MDB_NOTLS). A transaction is used by one thread at a time and ended
 *    exactly once by commit or abort, which free it. All transactions must be ended
 *    before zql_store_close.
 *  - Opening the same data directory twice in one process returns the same shared store
 *    (reference counted; each open needs its close): LMDB forbids two environments on
 *    one file in a process.
 *
 * Errors are data: 0 success, ZQL_STORE_NOTFOUND (positive) for a missing document or
 * collection where documented, or a negative ZQL_E_*: ZQL_E_USAGE for invalid arguments
 * (bad collection name, empty or too long id, a write in a read transaction, an invalid
 * BSON document), ZQL_E_IO for a backend failure (the message has LMDB's mdb_strerror),
 * ZQL_E_CORRUPT for a stored value that is not a BSON document, ZQL_E_NOMEM. The message
 * is appended to `err` (which may be NULL) and names the collection. After an error in a
 * write transaction, abort it (LMDB refuses further work in it).
 *
 * Store full (LMDB): the map is reserved sparse (1 TiB on 64-bit hosts, 1 GiB on 32-bit).
 * If it fills anyway the failing call returns ZQL_E_IO ("store full"), and the map is
 * doubled before the next transaction begins; abort and redo the transaction.
 */
#ifndef ZQL_STORE_H
#define ZQL_STORE_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"

/* get/del/drop: no such document or collection (positive, not an error code). */
#define ZQL_STORE_NOTFOUND 1
/* The longest collection name in bytes. */
#define ZQL_STORE_MAX_NAME 255
/* The longest id in bytes every backend accepts (LMDB's key limit, 511, less 8). */
#define ZQL_STORE_MAX_ID 503

typedef struct zql_store zql_store_t;
typedef struct zql_store_txn zql_store_txn_t;

/* Scan callback: one document, in id order. doc is a read-only view valid during the
 * call only (copy what must outlive it). Return 0 to go on, non-zero to stop the scan,
 * which then returns that value. In a write transaction fn may put and delete (in any
 * collection); the scan goes on after the last visited id. */
typedef int (*zql_store_visit_fn)(void *arg, const void *id, size_t idlen, const bson_t *doc);

/* ==== backend interface (callers use the functions below) ==== */

typedef struct zql_store_ops {
  const char *name; /* "lmdb" */
  void (*close)(zql_store_t *s);
  int (*begin)(zql_store_t *s, bool write, zql_store_txn_t **out, zql_strbuf_t *err);
  int (*commit)(zql_store_txn_t *t, zql_strbuf_t *err);
  int (*commit_lazy)(zql_store_txn_t *t, zql_strbuf_t *err);
  void (*abort)(zql_store_txn_t *t);
  int (*get)(zql_store_txn_t *t, const char *coll, const void *id, size_t idlen, bson_t *doc,
             zql_strbuf_t *err);
  /* optional: get whose view is valid only until the next write in t (no copy) */
  int (*peek)(zql_store_txn_t *t, const char *coll, const void *id, size_t idlen, bson_t *doc,
              zql_strbuf_t *err);
  int (*put)(zql_store_txn_t *t, const char *coll, const void *id, size_t idlen,
             const bson_t *doc, zql_strbuf_t *err);
  int (*del)(zql_store_txn_t *t, const char *coll, const void *id, size_t idlen,
             zql_strbuf_t *err);
  int (*scan)(zql_store_txn_t *t, const char *coll, const void *from, size_t fromlen,
              const void *to, size_t tolen, zql_store_visit_fn fn, void *arg,
              zql_strbuf_t *err);
  int (*prefix)(zql_store_txn_t *t, const char *coll, const void *prefix, size_t prefixlen,
                zql_store_visit_fn fn, void *arg, zql_strbuf_t *err);
  int (*count)(zql_store_txn_t *t, const char *coll, uint64_t *n, zql_strbuf_t *err);
  int (*drop)(zql_store_txn_t *t, const char *coll, zql_strbuf_t *err);
  int (*replace_collection)(zql_store_txn_t *t, const char *from, const char *to,
                            zql_strbuf_t *err);
  int (*collections)(zql_store_txn_t *t, void (*fn)(void *arg, const char *name), void *arg,
                     zql_strbuf_t *err);
} zql_store_ops_t;

/* Every backend's store and transaction structs start with these. */
struct zql_store {
  const zql_store_ops_t *ops;
};
struct zql_store_txn {
  zql_store_t *store;
};

/* ==== the store ==== */

/* Open (creating DATA and DATA/results/ as needed) the LMDB results store of the data
 * directory: one LMDB environment (DATA/results/data.mdb and lock.mdb), durable commits.
 * Reader slots left by dead processes are released; a writer that died mid-transaction
 * leaves nothing behind (LMDB's robust lock). Opening a directory already open in this
 * process returns the same store (see above). ZQL_E_IO, ZQL_E_CORRUPT (not a zql results
 * store of this format), ZQL_E_NOMEM. */
int zql_store_open_lmdb(const char *data_dir, zql_store_t **out, zql_strbuf_t *err);

/* Test hook: the initial LMDB map size in bytes for stores opened after the call (0: the
 * default). Returns the previous value. Not thread-safe; for unit tests of map growth. */
size_t zql_store_lmdb_test_mapsize(size_t bytes);

/* Release one reference; the last one closes the store. NULL is a no-op. */
static inline void zql_store_close(zql_store_t *s)
{
  if (s)
    s->ops->close(s);
}

/* Begin a read (write == false) or write transaction. */
static inline int zql_store_begin(zql_store_t *s, bool write, zql_store_txn_t **out,
                                  zql_strbuf_t *err)
{
  return s->ops->begin(s, write, out, err);
}

/* Commit (durably, for a write transaction) and free t, also when it fails. */
static inline int zql_store_commit(zql_store_txn_t *t, zql_strbuf_t *err)
{
  return t->store->ops->commit(t, err);
}

/* Commit without waiting for the disk, and free t: atomic and visible at once, durable
 * when a later durable commit returns; a system crash before that loses it (never part of
 * it). For bookkeeping that may be lost, such as a run's `started` record on a backend
 * whose run commit is one transaction (a lost record just means the run starts anew). */
static inline int zql_store_commit_lazy(zql_store_txn_t *t, zql_strbuf_t *err)
{
  return t->store->ops->commit_lazy(t, err);
}

/* Discard every change of t and free it. */
static inline void zql_store_abort(zql_store_txn_t *t)
{
  t->store->ops->abort(t);
}

/* Fetch a document: 0 and *doc set up as a bson_init_static view valid until t ends (no
 * bson_destroy needed), or ZQL_STORE_NOTFOUND (also for a collection that does not exist),
 * or < 0. */
static inline int zql_store_get(zql_store_txn_t *t, const char *coll, const void *id,
                                size_t idlen, bson_t *doc, zql_strbuf_t *err)
{
  return t->store->ops->get(t, coll, id, idlen, doc, err);
}

/* As zql_store_get, but the view is valid only until the next put, del, drop or
 * replace_collection in t, or its end: a backend may then hand out its own memory instead
 * of a copy (LMDB's pages; the commit of an incremental run reads a batch of documents,
 * merges them, then writes them). */
static inline int zql_store_peek(zql_store_txn_t *t, const char *coll, const void *id,
                                 size_t idlen, bson_t *doc, zql_strbuf_t *err)
{
  if (t->store->ops->peek)
    return t->store->ops->peek(t, coll, id, idlen, doc, err);
  return t->store->ops->get(t, coll, id, idlen, doc, err);
}

/* Insert or overwrite a document (write transactions); creates the collection. */
static inline int zql_store_put(zql_store_txn_t *t, const char *coll, const void *id,
                                size_t idlen, const bson_t *doc, zql_strbuf_t *err)
{
  return t->store->ops->put(t, coll, id, idlen, doc, err);
}

/* Delete a document: 0, or ZQL_STORE_NOTFOUND when absent (write transactions). */
static inline int zql_store_del(zql_store_txn_t *t, const char *coll, const void *id,
                                size_t idlen, zql_strbuf_t *err)
{
  return t->store->ops->del(t, coll, id, idlen, err);
}

/* Visit the documents with from <= id < to in id order. from == NULL (or fromlen 0): from
 * the first; to == NULL: to the end. Returns 0 when the range is exhausted (a missing
 * collection is empty), fn's non-zero result when it stopped, or < 0. */
static inline int zql_store_scan(zql_store_txn_t *t, const char *coll, const void *from,
                                 size_t fromlen, const void *to, size_t tolen,
                                 zql_store_visit_fn fn, void *arg, zql_strbuf_t *err)
{
  return t->store->ops->scan(t, coll, from, fromlen, to, tolen, fn, arg, err);
}

/* Visit the documents whose id starts with prefix (NULL or length 0: all), in id order;
 * results as zql_store_scan. */
static inline int zql_store_prefix(zql_store_txn_t *t, const char *coll, const void *prefix,
                                   size_t prefixlen, zql_store_visit_fn fn, void *arg,
                                   zql_strbuf_t *err)
{
  return t->store->ops->prefix(t, coll, prefix, prefixlen, fn, arg, err);
}

/* The number of documents of a collection (0 when it does not exist). O(1) in LMDB. */
static inline int zql_store_count(zql_store_txn_t *t, const char *coll, uint64_t *n,
                                  zql_strbuf_t *err)
{
  return t->store->ops->count(t, coll, n, err);
}

/* Delete every document of a collection and remove it: 0, or ZQL_STORE_NOTFOUND when it
 * does not exist (write transactions). O(documents) in LMDB. */
static inline int zql_store_drop(zql_store_txn_t *t, const char *coll, zql_strbuf_t *err)
{
  return t->store->ops->drop(t, coll, err);
}

/* The rebuild swap of R15: make `to` hold exactly what `from` holds (the documents `to`
 * had before are gone) and remove `from`; a missing `from` counts as empty (`to` is then
 * removed). Atomic: readers see either the old or the new state; in LMDB it is part of
 * the caller's write transaction, so an abort leaves both collections unchanged. The
 * renaming itself is O(1) in LMDB; deleting the old documents of `to` is O(their number).
 * from == to is ZQL_E_USAGE. */
static inline int zql_store_replace_collection(zql_store_txn_t *t, const char *from,
                                               const char *to, zql_strbuf_t *err)
{
  return t->store->ops->replace_collection(t, from, to, err);
}

/* Call fn with every collection name (NUL-terminated, valid during the call), sorted by
 * bytes. */
static inline int zql_store_collections(zql_store_txn_t *t, void (*fn)(void *arg, const char *name),
                                        void *arg, zql_strbuf_t *err)
{
  return t->store->ops->collections(t, fn, arg, err);
}

#endif
