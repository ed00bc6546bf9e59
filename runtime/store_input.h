/*
 * store_input.h -- `from agg NAME` over the results store: the stored output documents of
 * an aggregate as an executor input, and the catalog sources a program needs to analyze
 * its `from agg` names (runtime services -> stages 2b and 4; design/ZQL.md resolved
 * point 6, R16, R17).
 *
 * 1. The input. An aggregate's output documents (runtime/incr.c writes them)
 *
 *      {_id, value: {column: final...}, state: {column: state..., "#slot": state...},
 *       k: {key column: value...}, b, tz, _hw, _rev, _late}
 *
 *    become the rows a `from agg` plan reads, in exactly the layout of the rows of an
 *    aggregate run in the same command (exec/rows_input.c):
 *
 *      {key columns..., value columns..., __state: state}
 *
 *    The planner compiles a column reference as a path into that document and merge(col)
 *    as a read of __state.col (planner/build.c). Row i (0-based, in store id order) has
 *    _seq i + 1 and timestamp 0; split cuts the ordinal range evenly.
 *
 *      zql_input_t in; zql_store_input_t *si;
 *      zql_store_input_new(txn, "zagg.daily", ZQL_STORE_INPUT_STATES, &in, &si, &err);
 *      zql_exec_run(x, &in, &opts, &res, &err);  ...  zql_store_input_free(si);
 *
 *    All documents are read when the input is created, inside the caller's transaction
 *    (one snapshot: every chunk of the run sees the same documents, whatever commits in
 *    the meantime), and the rows are kept in one buffer owned by the input. Memory: the
 *    bytes of the k and value documents of every output document (plus its state
 *    document with ZQL_STORE_INPUT_STATES), plus 8 bytes per row. The transaction may end
 *    once the input exists.
 *
 * 2. The catalog sources. A `from agg NAME` whose NAME no aggregate of the user's files
 *    defines reads NAME's stored documents; the analyzer still needs NAME's definition
 *    (its keys and computed fields, their types and aggregators) to resolve columns and
 *    merge(). zql_catalog_sources() finds every such name in the parsed (not yet analyzed)
 *    files -- `from agg NAME` of aggregates, queries and explain targets, `schedule after
 *    NAME`, `explain NAME` -- fetches NAME's source text from the catalog
 *    (runtime/catalog.h), parses it, and follows the names that source needs in turn
 *    (transitively). The caller analyzes its files and the returned ones together:
 *
 *      zql_parse(...) each user file;                      files[0..n)
 *      zql_catalog_sources(txn, arena, files, n, &d, &cs, &err);
 *      files[n..n+cs.nfiles) = cs.files;  zql_analyze(arena, files, n + cs.nfiles, &d);
 *      zql_catalog_diags_trim(&d, &cs);                   before printing the diagnostics
 *      plan only statements of files[0..n)
 *
 *    The returned files hold only what the analysis needs: the aggregates asked for and
 *    the aggregates of the same source they read (what they were compiled against), with
 *    every param, table and reducer of their sources. Other aggregates, queries and
 *    explains of those sources are dropped, so they are never planned, run or printed.
 *    Several names stored from one source text share one parsed file.
 *
 *    Names never collide: the analyzer has one namespace per kind (params, tables,
 *    reducers, aggregates) across all files, so a definition of a catalog source whose
 *    name the user's files (or an earlier catalog source) already define is renamed to
 *    "NAME@catalog" (then "NAME@catalog2", ...) together with every reference to it in
 *    that source. The user's definitions always keep their names.
 *
 *    A name the catalog does not hold either is left alone: the analyzer reports it
 *    (E3019 with its location and caret), as without a store. The catalog sources are
 *    named "catalog:NAME" in diagnostics (an error there means the stored source no
 *    longer compiles, for instance after an upgrade of the language).
 */
#ifndef ZQL_STORE_INPUT_H
#define ZQL_STORE_INPUT_H

#include "runtime/base/zql_common.h"

#include "exec/zql_exec.h"
#include "parser/zql_parse.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"
#include "runtime/store.h"

/* {==== the input ========================================================================= */

/* zql_store_input_new flags: keep each document's state as the row's __state (for plans
 * with merge(); without it rows carry key and final values only). */
#define ZQL_STORE_INPUT_STATES 1u

typedef struct zql_store_input zql_store_input_t;

/* Read every document of collection `coll` through t (a read or write transaction) and
 * set *in up over their rows, in id order. A missing collection gives no rows. Errors:
 * ZQL_E_CORRUPT for a document without a `value` document or whose `k`, `value` or
 * `state` is not a valid document (the message names the collection and the document's
 * _id), the store's own errors (ZQL_E_IO, ZQL_E_USAGE for an invalid collection name),
 * ZQL_E_TOO_LARGE for a row over the BSON size limit, ZQL_E_NOMEM; the message is
 * appended to err (may be NULL). *out and *in are untouched on error. */
int zql_store_input_new(zql_store_txn_t *t, const char *coll, unsigned flags, zql_input_t *in,
                        zql_store_input_t **out, zql_strbuf_t *err);
void zql_store_input_free(zql_store_input_t *si);
/* The number of rows (documents read). */
uint64_t zql_store_input_rows(const zql_store_input_t *si);

/* }==== */

/* {==== the catalog sources =============================================================== */

typedef struct zql_catsrc {
  zql_node_t **files;   /* parsed ZQL_N_FILEs, trimmed as described above (in the arena) */
  uint32_t nfiles;
  const char **names;   /* the names of the user's files that the catalog defined */
  uint32_t nnames;
} zql_catsrc_t;

/* Find the aggregate names files[0..n) need and do not define, and parse their catalog
 * sources into *out (see above). Files that are NULL (unreadable) are skipped. The
 * sources are numbered after the user's (zql_source_t.order = n, n + 1, ...); parse
 * errors in them go to d like any other. Their texts are copied into the arena, so t may
 * end after the call; t may be NULL (no results store): *out is then empty. Returns 0;
 * ZQL_E_CORRUPT when a catalog entry does not parse (catalog.h) or its source does not
 * define its aggregate; the store's errors; ZQL_E_NOMEM. The message is appended to err
 * (may be NULL). */
int zql_catalog_sources(zql_store_txn_t *t, zql_arena_t *arena, zql_node_t *const *files,
                        size_t n, zql_diags_t *d, zql_catsrc_t *out, zql_strbuf_t *err);

/* Do files[0..n) read (or name) an aggregate they do not define? Then the store is worth
 * opening for zql_catalog_sources(). */
bool zql_catalog_wanted(zql_node_t *const *files, size_t n);

/* Drop the warnings and notes about the catalog sources of cs from d (they are not the
 * user's text); errors stay. */
void zql_catalog_diags_trim(zql_diags_t *d, const zql_catsrc_t *cs);

/* All of the above for a command: analyze the parsed files[0..n) together with the catalog
 * sources they need from store s (NULL: no store), trimming the diagnostics about those
 * sources. *all (in arena) holds the user's files first, then the catalog's; *nall counts
 * them. Returns zql_analyze's result, or the store's errors (message in err). */
int zql_analyze_with_catalog(zql_store_t *s, zql_arena_t *arena, zql_node_t **files, size_t n,
                             zql_diags_t *d, zql_node_t ***all, size_t *nall, zql_strbuf_t *err);

/* }==== */

#endif
