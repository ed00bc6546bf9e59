#include "runtime/base/zql_common.h"
/*
 * store_input.c -- `from agg NAME` over the results store: stored output documents as
 * executor rows, and the catalog sources of the names a program reads (runtime services
 * -> stages 2b and 4; the contract is in runtime/store_input.h).
 *
 * Pipeline position: runtime/cmd_run.c parses the user's files, asks
 * zql_catalog_sources() for the definitions of the aggregates they read from the store,
 * analyzes everything together (parser/analyze.c) and plans the user's statements
 * (planner/build.c); a plan whose `from agg` source is stored then runs (exec/run.c) over
 * zql_store_input_new() instead of the event log. runtime/incr.c writes the documents read
 * here; exec/rows_input.c produces the same rows for an aggregate run in the same command.
 *
 * The rows are built by concatenation, without a BSON builder: a row is the elements of
 * the document's `k`, then those of its `value`, then `__state` (an embedded document
 * element whose bytes are the stored `state` document), framed by a length and the
 * terminating 0x00. Each part is validated (bson_validate) before it is copied, so the
 * executor only ever sees well-formed rows.
 */
#include "runtime/store_input.h"

#include <string.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/catalog.h"

/* {==== the input ========================================================================= */

struct zql_store_input {
  zql_rowbuf_t rb;     /* every row document, back to back (exec/rows_input.c serves them) */
};

typedef struct build {
  const char *coll;
  bool states;
  zql_strbuf_t sb;     /* the rows */
  uint64_t *off;       /* the start of each row, and one more slot for the end */
  uint64_t n, cap;
  zql_strbuf_t *err;
} build_t;

/* The document's _id for messages: a string id quoted, else its type. */
static void describe_id(zql_strbuf_t *sb, const bson_t *doc)
{
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)) {
    uint32_t len;
    const char *s = bson_iter_utf8(&it, &len);
    zql_strbuf_add_quoted(sb, s, len);
  } else if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
    zql_strbuf_adds(sb, "with a key document as _id");
  } else {
    zql_strbuf_adds(sb, "without a string _id");
  }
}

static int corrupt(build_t *b, const bson_t *doc, const char *what)
{
  if (b->err) {
    zql_strbuf_addf(b->err, "results store: collection '%s': document ", b->coll);
    describe_id(b->err, doc);
    zql_strbuf_addf(b->err, ": %s", what);
  }
  return ZQL_E_CORRUPT;
}

/* A sub-document field: its bytes, or NULL when absent. false: present but not a valid
 * document. */
static bool subdoc(const bson_iter_t *it, const uint8_t **data, uint32_t *len)
{
  if (!BSON_ITER_HOLDS_DOCUMENT(it))
    return false;
  bson_iter_document(it, len, data);
  bson_t d;
  return *data && bson_init_static(&d, *data, *len) &&
         bson_validate(&d, BSON_VALIDATE_NONE, NULL);
}

static void put_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static int visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)id;
  (void)idlen;
  build_t *b = arg;
  const uint8_t *k = NULL, *v = NULL, *s = NULL;
  uint32_t kl = 0, vl = 0, sl = 0;
  bson_iter_t it;
  if (!bson_iter_init(&it, doc))
    return corrupt(b, doc, "not a BSON document");
  while (bson_iter_next(&it)) {
    const char *key = bson_iter_key(&it);
    if (strcmp(key, "k") == 0) {
      if (!subdoc(&it, &k, &kl))
        return corrupt(b, doc, "'k' is not a valid document");
    } else if (strcmp(key, "value") == 0) {
      if (!subdoc(&it, &v, &vl))
        return corrupt(b, doc, "'value' is not a valid document");
    } else if (strcmp(key, "state") == 0 && b->states) {
      if (!subdoc(&it, &s, &sl))
        return corrupt(b, doc, "'state' is not a valid document");
    }
  }
  if (!v)
    return corrupt(b, doc, "no 'value' document");
  /* length + k's elements + value's elements [+ 0x03 "__state" 0x00 state] + 0x00 */
  uint64_t total = 4 + (k ? kl - 5 : 0) + (vl - 5) + (s ? 1 + 8 + (uint64_t)sl : 0) + 1;
  if (total > INT32_MAX) {
    if (b->err)
      zql_strbuf_addf(b->err, "results store: collection '%s': a row is larger than a BSON "
                      "document may be", b->coll);
    return ZQL_E_TOO_LARGE;
  }
  if (b->n + 1 >= b->cap) {
    uint64_t cap = b->cap ? b->cap * 2 : 1024;
    uint64_t *off = zql_reallocarray(b->off, cap, sizeof *off);
    if (!off)
      return ZQL_E_NOMEM;
    b->off = off;
    b->cap = cap;
  }
  b->off[b->n] = b->sb.len;
  uint8_t len[4];
  put_le32(len, (uint32_t)total);
  zql_strbuf_add(&b->sb, len, 4);
  if (k)
    zql_strbuf_add(&b->sb, k + 4, kl - 5);
  zql_strbuf_add(&b->sb, v + 4, vl - 5);
  if (s) {
    zql_strbuf_add(&b->sb, "\x03__state", 9); /* the type byte, the key and its NUL */
    zql_strbuf_add(&b->sb, s, sl);
  }
  zql_strbuf_addc(&b->sb, '\0');
  if (b->sb.oom)
    return ZQL_E_NOMEM;
  b->n++;
  return 0;
}

int zql_store_input_new(zql_store_txn_t *t, const char *coll, unsigned flags, zql_input_t *in,
                        zql_store_input_t **out, zql_strbuf_t *err)
{
  build_t b = {coll, (flags & ZQL_STORE_INPUT_STATES) != 0, ZQL_STRBUF_INIT, NULL, 0, 0, err};
  size_t errlen = err ? err->len : 0;
  zql_store_input_t *si = zql_calloc(1, sizeof *si);
  int rc = si ? zql_store_scan(t, coll, NULL, 0, NULL, 0, visit, &b, err) : ZQL_E_NOMEM;
  if (!rc && !b.off) { /* no rows: the one offset */
    b.off = zql_calloc(1, sizeof *b.off);
    rc = b.off ? 0 : ZQL_E_NOMEM;
  }
  if (rc) {
    if (rc == ZQL_E_NOMEM && err && err->len == errlen)
      zql_strbuf_addf(err, "results store: collection '%s': out of memory while reading its "
                      "documents", coll);
    zql_strbuf_release(&b.sb);
    zql_free(b.off);
    zql_free(si);
    return rc; /* visit and the store return 0 or < 0 */
  }
  b.off[b.n] = b.sb.len;
  si->rb.nrows = b.n;
  si->rb.off = b.off;
  si->rb.buf = (uint8_t *)zql_strbuf_detach(&b.sb, NULL);
  zql_rowbuf_input(&si->rb, in);
  *out = si;
  return 0;
}

void zql_store_input_free(zql_store_input_t *si)
{
  if (!si)
    return;
  zql_free(si->rb.buf);
  zql_free(si->rb.off);
  zql_free(si);
}

uint64_t zql_store_input_rows(const zql_store_input_t *si)
{
  return si->rb.nrows;
}

/* }==== */

/* {==== the catalog sources =============================================================== */

/* The analyzer's namespaces (parser/analyze.c pass 1): a name may repeat across them. */
enum { K_PARAM, K_TABLE, K_REDUCER, K_AGG, K_COUNT };

typedef struct names {
  const char **v;
  uint32_t n, cap;
} names_t;

typedef struct cfile {
  zql_node_t *file;
  const zql_source_t *src;
  bool *kept;          /* per item: an aggregate that is needed */
  bool parse_failed;
} cfile_t;

/* A kept catalog aggregate whose references are still to follow. */
typedef struct pending {
  uint32_t file, item;
} pending_t;

typedef struct resolver {
  zql_arena_t *a;
  zql_store_txn_t *t;
  zql_diags_t *d;
  zql_strbuf_t *err;
  names_t defs[K_COUNT]; /* defined so far: the user's, then those of kept catalog items */
  names_t todo;          /* aggregate names to find in the catalog (and those found) */
  names_t asked;         /* the names the user's files read */
  names_t found;         /* ... that the catalog defined */
  cfile_t *cf;
  uint32_t ncf, capcf;
  pending_t *pending;
  uint32_t npending, cappending;
  uint32_t order;        /* zql_source_t.order of the next catalog source */
} resolver_t;

static bool streq(const char *a, const char *b)
{
  return strcmp(a, b) == 0;
}

static bool names_has(const names_t *s, const char *name)
{
  for (uint32_t i = 0; i < s->n; i++)
    if (streq(s->v[i], name))
      return true;
  return false;
}

static int names_add(zql_arena_t *a, names_t *s, const char *name)
{
  if (s->n == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 16;
    const char **v = zql_arena_calloc(a, cap, sizeof *v);
    if (!v)
      return ZQL_E_NOMEM;
    if (s->n)
      memcpy(v, s->v, s->n * sizeof *v);
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = name;
  return 0;
}

/* The namespace and name of a definition item, or -1. */
static int def_kind(const zql_node_t *n, const char **name)
{
  *name = NULL;
  switch (n->kind) {
  case ZQL_N_PARAM:
    *name = n->u.decl.name;
    return K_PARAM;
  case ZQL_N_TABLE:
    *name = n->u.table.name;
    return K_TABLE;
  case ZQL_N_REDUCER:
    *name = n->u.reducer.name;
    return K_REDUCER;
  case ZQL_N_AGGREGATE:
    *name = n->u.query.name;
    return K_AGG;
  default:
    return -1;
  }
}

typedef int (*ref_fn)(resolver_t *r, void *arg, const char *name);

/* Call fn with every aggregate name statement n reads or names: `from agg NAME` sources,
 * `schedule after NAME`, and for explain its target's or its NAME. */
static int stmt_refs(resolver_t *r, const zql_node_t *n, ref_fn fn, void *arg)
{
  int rc = 0;
  if (n->kind == ZQL_N_EXPLAIN)
    return n->u.explain.target ? stmt_refs(r, n->u.explain.target, fn, arg)
           : n->u.explain.name ? fn(r, arg, n->u.explain.name)
                               : 0;
  if (n->kind != ZQL_N_AGGREGATE && n->kind != ZQL_N_QUERY)
    return 0;
  const zql_list_t *srcs = &n->u.query.sources;
  for (uint32_t i = 0; i < srcs->n && !rc; i++)
    if (srcs->items[i]->u.source.is_agg && srcs->items[i]->u.source.name)
      rc = fn(r, arg, srcs->items[i]->u.source.name);
  const zql_list_t *opts = &n->u.query.options;
  for (uint32_t i = 0; i < opts->n && !rc; i++) {
    const zql_node_t *o = opts->items[i];
    if (o->u.option.opt == ZQL_OPT_SCHEDULE && o->u.option.sched == ZQL_SCHED_AFTER &&
        o->u.option.ident)
      rc = fn(r, arg, o->u.option.ident);
  }
  return rc;
}

/* A name a user statement reads: to find in the catalog unless the user defines it. */
static int user_ref(resolver_t *r, void *arg, const char *name)
{
  (void)arg;
  if (names_has(&r->defs[K_AGG], name))
    return 0;
  int rc = names_has(&r->asked, name) ? 0 : names_add(r->a, &r->asked, name);
  if (!rc && !names_has(&r->todo, name))
    rc = names_add(r->a, &r->todo, name);
  return rc;
}

/* Renaming: every definition and reference of one name in one namespace. */

typedef struct ren {
  int kind;
  const char *from, *to;
} ren_t;

static void rename_walk(zql_node_t *n, void *arg)
{
  const ren_t *rn = arg;
  const char **p = NULL;
  switch (n->kind) {
  case ZQL_N_PARAM:
    p = rn->kind == K_PARAM ? &n->u.decl.name : NULL;
    break;
  case ZQL_N_PARAMREF:
    p = rn->kind == K_PARAM ? &n->u.paramref.name : NULL;
    break;
  case ZQL_N_TABLE:
    p = rn->kind == K_TABLE ? &n->u.table.name : NULL;
    break;
  case ZQL_N_EMIT:
    p = rn->kind == K_TABLE ? &n->u.emit.table : NULL;
    break;
  case ZQL_N_REDUCER:
    p = rn->kind == K_REDUCER ? &n->u.reducer.name : NULL;
    break;
  case ZQL_N_CALL:
    p = rn->kind == K_REDUCER ? &n->u.call.name : NULL;
    break;
  case ZQL_N_AGGREGATE:
    p = rn->kind == K_AGG ? &n->u.query.name : NULL;
    break;
  case ZQL_N_SOURCE:
    p = rn->kind == K_AGG && n->u.source.is_agg ? &n->u.source.name : NULL;
    break;
  case ZQL_N_OPTION:
    p = rn->kind == K_AGG && n->u.option.opt == ZQL_OPT_SCHEDULE &&
                n->u.option.sched == ZQL_SCHED_AFTER ? &n->u.option.ident : NULL;
    break;
  case ZQL_N_EXPLAIN:
    p = rn->kind == K_AGG && !n->u.explain.target ? &n->u.explain.name : NULL;
    break;
  default:
    break;
  }
  if (p && *p && streq(*p, rn->from))
    *p = rn->to;
  zql_node_children(n, rename_walk, arg);
}

/* Does catalog file f define `name` in namespace kind? */
static bool file_defines(const cfile_t *f, int kind, const char *name)
{
  const zql_list_t *items = &f->file->u.list;
  for (uint32_t i = 0; i < items->n; i++) {
    const char *nm;
    if (def_kind(items->items[i], &nm) == kind && nm && streq(nm, name))
      return true;
  }
  return false;
}

/* Give f's definition `name` of namespace kind a name nobody uses, in all of f. */
static int rename_def(resolver_t *r, cfile_t *f, int kind, const char *name, const char **out)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  for (unsigned k = 1;; k++) {
    zql_strbuf_reset(&sb);
    zql_strbuf_addf(&sb, k == 1 ? "%s@catalog" : "%s@catalog%u", name, k);
    if (sb.oom)
      break;
    if (!names_has(&r->defs[kind], sb.buf) && !file_defines(f, kind, sb.buf))
      break;
  }
  char *to = sb.oom ? NULL : zql_arena_strndup(r->a, sb.buf, sb.len);
  zql_strbuf_release(&sb);
  if (!to)
    return ZQL_E_NOMEM;
  ren_t rn = {kind, name, to};
  zql_node_children(f->file, rename_walk, &rn);
  *out = to;
  return 0;
}

static int agg_index(const cfile_t *f, const char *name)
{
  const zql_list_t *items = &f->file->u.list;
  for (uint32_t i = 0; i < items->n; i++) {
    const zql_node_t *s = items->items[i];
    if (s->kind == ZQL_N_AGGREGATE && s->u.query.name && streq(s->u.query.name, name))
      return (int)i;
  }
  return -1;
}

/* Keep aggregate idx of catalog file f (renamed when its name is taken); the names it
 * reads are followed later (resolver.pending), once every name the user asked for has
 * its definition. */
static int keep_agg(resolver_t *r, cfile_t *f, uint32_t idx)
{
  if (f->kept[idx])
    return 0;
  f->kept[idx] = true;
  zql_node_t *s = f->file->u.list.items[idx];
  const char *name = s->u.query.name;
  int rc = 0;
  if (names_has(&r->defs[K_AGG], name))
    rc = rename_def(r, f, K_AGG, name, &name);
  if (!rc)
    rc = names_add(r->a, &r->defs[K_AGG], name);
  if (!rc && r->npending == r->cappending) {
    uint32_t cap = r->cappending ? r->cappending * 2 : 16;
    pending_t *v = zql_arena_calloc(r->a, cap, sizeof *v);
    if (!v)
      return ZQL_E_NOMEM;
    if (r->npending)
      memcpy(v, r->pending, r->npending * sizeof *v);
    r->pending = v;
    r->cappending = cap;
  }
  if (!rc)
    r->pending[r->npending++] = (pending_t){(uint32_t)(f - r->cf), idx};
  return rc;
}

/* A name a kept catalog aggregate reads: its own source's aggregate of that name (what it
 * was compiled against), else one found like the user's names. */
static int cat_ref(resolver_t *r, void *arg, const char *name)
{
  cfile_t *f = arg;
  int j = agg_index(f, name);
  if (j >= 0)
    return keep_agg(r, f, (uint32_t)j);
  if (names_has(&r->defs[K_AGG], name) || names_has(&r->todo, name))
    return 0;
  return names_add(r->a, &r->todo, name);
}

/* Parse a catalog source (the entry of `name`) as a new catalog file; its params, tables
 * and reducers join the namespaces (renamed when taken). */
static int add_file(resolver_t *r, const char *name, const char *text, uint32_t len,
                    cfile_t **out)
{
  if (r->ncf == r->capcf) {
    uint32_t cap = r->capcf ? r->capcf * 2 : 4;
    cfile_t *v = zql_arena_calloc(r->a, cap, sizeof *v);
    if (!v)
      return ZQL_E_NOMEM;
    if (r->ncf)
      memcpy(v, r->cf, r->ncf * sizeof *v);
    r->cf = v;
    r->capcf = cap;
  }
  zql_source_t *src = zql_arena_calloc(r->a, 1, sizeof *src);
  size_t nlen = strlen(name);
  char *sname = zql_arena_alloc(r->a, nlen + 9);
  if (!src || !sname)
    return ZQL_E_NOMEM;
  memcpy(sname, "catalog:", 8);
  memcpy(sname + 8, name, nlen + 1);
  int rc = zql_source_init(src, r->a, sname, text, len);
  if (rc) {
    if (rc != ZQL_E_NOMEM && r->err)
      zql_strbuf_addf(r->err, "results store: catalog entry '%s': its source cannot be read "
                      "(%s)", name, zql_strerror(rc));
    return rc;
  }
  src->order = r->order++;
  cfile_t *f = &r->cf[r->ncf];
  memset(f, 0, sizeof *f);
  f->src = src;
  int nerr = r->d->nerr;
  if (zql_parse(r->a, src, r->d, &f->file) == ZQL_E_NOMEM)
    return ZQL_E_NOMEM; /* parse errors are in d */
  if (!f->file) /* zql_parse sets it even with errors, unless out of memory */
    return ZQL_E_NOMEM;
  f->parse_failed = r->d->nerr > nerr;
  uint32_t n = f->file->u.list.n;
  f->kept = zql_arena_calloc(r->a, n ? n : 1, sizeof *f->kept);
  if (!f->kept)
    return ZQL_E_NOMEM;
  r->ncf++;
  for (uint32_t i = 0; i < n && !rc; i++) {
    const char *nm;
    int kind = def_kind(f->file->u.list.items[i], &nm);
    if (kind < 0 || kind == K_AGG || !nm)
      continue;
    if (names_has(&r->defs[kind], nm))
      rc = rename_def(r, f, kind, nm, &nm);
    if (!rc)
      rc = names_add(r->a, &r->defs[kind], nm);
  }
  *out = f;
  return rc;
}

/* Find aggregate `name` in the catalog and keep its definition. */
static int resolve(resolver_t *r, const char *name)
{
  /* a name the user asked for is not the user's: if defined, a catalog source defines it
   * (kept as what another stored aggregate reads) */
  bool asked = names_has(&r->asked, name);
  if (names_has(&r->defs[K_AGG], name))
    return asked && !names_has(&r->found, name) ? names_add(r->a, &r->found, name) : 0;
  zql_catentry_t e;
  bson_t doc;
  int rc = zql_catalog_get(r->t, name, &e, &doc, r->err);
  if (rc == ZQL_STORE_NOTFOUND)
    return 0; /* the analyzer reports it where it is read */
  if (rc)
    return rc;
  cfile_t *f = NULL;
  for (uint32_t i = 0; i < r->ncf && !f; i++)
    if (r->cf[i].src->len == e.source_len &&
        memcmp(r->cf[i].src->text, e.source, e.source_len) == 0)
      f = &r->cf[i];
  if (!f && (rc = add_file(r, name, e.source, e.source_len, &f)) != 0)
    return rc;
  int j = agg_index(f, name);
  if (j < 0) {
    if (f->parse_failed)
      return 0; /* the parse errors say why */
    if (r->err)
      zql_strbuf_addf(r->err, "results store: catalog entry '%s': its source defines no "
                      "aggregate '%s'", name, name);
    return ZQL_E_CORRUPT;
  }
  rc = keep_agg(r, f, (uint32_t)j);
  if (!rc && asked)
    rc = names_add(r->a, &r->found, name);
  return rc;
}

/* The user's definitions into r->defs (first: they keep their names). */
static int user_defs(resolver_t *r, zql_node_t *const *files, size_t n)
{
  int rc = 0;
  for (size_t f = 0; f < n && !rc; f++)
    for (uint32_t i = 0; files[f] && i < files[f]->u.list.n && !rc; i++) {
      const char *nm;
      int kind = def_kind(files[f]->u.list.items[i], &nm);
      if (kind >= 0 && nm && !names_has(&r->defs[kind], nm))
        rc = names_add(r->a, &r->defs[kind], nm);
    }
  for (size_t f = 0; f < n && !rc; f++)
    for (uint32_t i = 0; files[f] && i < files[f]->u.list.n && !rc; i++)
      rc = stmt_refs(r, files[f]->u.list.items[i], user_ref, NULL);
  return rc;
}

bool zql_catalog_wanted(zql_node_t *const *files, size_t n)
{
  zql_arena_t *a = zql_arena_create(NULL);
  resolver_t r;
  memset(&r, 0, sizeof r);
  r.a = a;
  /* out of memory: say yes, zql_catalog_sources will report it */
  bool wanted = !a || user_defs(&r, files, n) != 0 || r.todo.n > 0;
  zql_arena_delete(a);
  return wanted;
}

int zql_catalog_sources(zql_store_txn_t *t, zql_arena_t *arena, zql_node_t *const *files,
                        size_t n, zql_diags_t *d, zql_catsrc_t *out, zql_strbuf_t *err)
{
  memset(out, 0, sizeof *out);
  if (!t)
    return 0;
  resolver_t r;
  memset(&r, 0, sizeof r);
  r.a = arena;
  r.t = t;
  r.d = d;
  r.err = err;
  r.order = (uint32_t)n;
  size_t errlen = err ? err->len : 0;
  int rc = user_defs(&r, files, n);
  /* names first (the user's come first in todo), then what the kept aggregates read;
   * both lists grow as sources need more */
  for (uint32_t i = 0, k = 0; !rc && (i < r.todo.n || k < r.npending);) {
    if (i < r.todo.n) {
      rc = resolve(&r, r.todo.v[i++]);
    } else {
      cfile_t *f = &r.cf[r.pending[k].file];
      rc = stmt_refs(&r, f->file->u.list.items[r.pending[k++].item], cat_ref, f);
    }
  }
  if (rc) {
    if (rc == ZQL_E_NOMEM && err && err->len == errlen)
      zql_strbuf_adds(err, "out of memory while reading the catalog");
    return rc;
  }
  /* trim each source to its definitions and the kept aggregates */
  if (r.ncf) {
    out->files = zql_arena_calloc(arena, r.ncf, sizeof *out->files);
    if (!out->files)
      return ZQL_E_NOMEM;
  }
  for (uint32_t c = 0; c < r.ncf; c++) {
    zql_list_t *items = &r.cf[c].file->u.list;
    uint32_t k = 0;
    for (uint32_t i = 0; i < items->n; i++) {
      zql_node_kind_t kind = items->items[i]->kind;
      if (kind == ZQL_N_PARAM || kind == ZQL_N_TABLE || kind == ZQL_N_REDUCER ||
          (kind == ZQL_N_AGGREGATE && r.cf[c].kept[i]))
        items->items[k++] = items->items[i];
    }
    items->n = k;
    out->files[c] = r.cf[c].file;
  }
  out->nfiles = r.ncf;
  out->names = r.found.v;
  out->nnames = r.found.n;
  return 0;
}

void zql_catalog_diags_trim(zql_diags_t *d, const zql_catsrc_t *cs)
{
  size_t k = 0;
  for (size_t i = 0; i < d->n; i++) {
    const zql_error_t *e = &d->items[i];
    bool drop = false;
    for (uint32_t c = 0; c < cs->nfiles && !drop && e->severity != ZQL_SEV_ERROR; c++)
      drop = e->source && e->source == zql_file_source(cs->files[c]);
    if (!drop)
      d->items[k++] = d->items[i];
    else if (e->severity == ZQL_SEV_WARNING)
      d->nwarn--;
  }
  d->n = k;
}

/* }==== */

int zql_analyze_with_catalog(zql_store_t *s, zql_arena_t *arena, zql_node_t **files, size_t n,
                             zql_diags_t *d, zql_node_t ***all, size_t *nall, zql_strbuf_t *err)
{
  zql_catsrc_t cs = {0};
  *all = files;
  *nall = n;
  if (s && zql_catalog_wanted(files, n)) {
    zql_store_txn_t *t;
    int rc = zql_store_begin(s, false, &t, err);
    if (rc)
      return rc;
    rc = zql_catalog_sources(t, arena, files, n, d, &cs, err);
    zql_store_abort(t); /* the parsed sources live in arena */
    if (rc)
      return rc;
  }
  if (cs.nfiles) {
    zql_node_t **v = zql_arena_calloc(arena, n + cs.nfiles, sizeof *v);
    if (!v)
      return ZQL_E_NOMEM;
    memcpy(v, files, n * sizeof *v);
    memcpy(v + n, cs.files, cs.nfiles * sizeof *v);
    *all = v;
    *nall = n + cs.nfiles;
  }
  int rc = d->nerr ? ZQL_E_SYNTAX : zql_analyze(arena, *all, *nall, d);
  zql_catalog_diags_trim(d, &cs);
  return rc;
}
