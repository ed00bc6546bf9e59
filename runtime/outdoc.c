#include "runtime/base/zql_common.h"
/*
 * outdoc.c -- output rows as results-store documents (runtime services; contract in
 * runtime/outdoc.h).
 *
 * Pipeline position: after the executor's REDUCE, the commit step of an incremental run
 * (runtime/incr.c) and `zql run -o FILE.bson` turn each result row into one document of
 * Zarkov's layout (`{_id: "key/2011-07-01", value: {...}}`) extended by R16.
 */
#include "runtime/outdoc.h"

#include <string.h>

#include "exec/output.h"
#include "runtime/base/tz.h"

static bool key_doc(bson_t *d, const char *name, const zql_ptable_t *pt, const zql_val_t *row)
{
  bson_t kd;
  if (!bson_append_document_begin(d, name, -1, &kd))
    return false;
  for (uint32_t c = 0; c < pt->ncols; c++)
    if (pt->cols[c].is_key && !zql_val_append_bson(&kd, pt->cols[c].name, -1, &row[c]))
      return false;
  return bson_append_document_end(d, &kd);
}

uint32_t zql_outdoc_table(const zql_plan_t *p, uint32_t t)
{
  uint32_t k = 0;
  for (uint32_t i = 0; i < p->ntables; i++)
    if (!p->tables[i].intermediate && !p->tables[i].prepass && k++ == t)
      return i;
  return 0;
}

void zql_outdoc_id(zql_strbuf_t *id, const zql_plan_t *p, uint32_t t, const zql_val_t *row)
{
  const zql_ptable_t *pt = &p->tables[t];
  if (p->key_doc) {
    bson_t d = BSON_INITIALIZER;
    bson_iter_t it;
    /* the key document's own bytes: build {k: {...}} and take the inner document */
    if (key_doc(&d, "k", pt, row) && bson_iter_init_find(&it, &d, "k")) {
      const uint8_t *data;
      uint32_t len;
      bson_iter_document(&it, &len, &data);
      zql_strbuf_add(id, data, len);
    } else {
      id->oom = true;
    }
    bson_destroy(&d);
    return;
  }
  const char *tpl = p->key_template;
  if (!tpl) {
    uint32_t nk = 0;
    for (uint32_t k = 0; k < pt->ncols; k++)
      if (pt->cols[k].is_key) {
        if (nk++)
          zql_strbuf_addc(id, '/');
        zql_cell_text(id, &row[k]);
      }
    if (!nk)
      zql_strbuf_adds(id, "_all");
    return;
  }
  for (const char *c = tpl; *c;) {
    const char *close = *c == '{' ? strchr(c, '}') : NULL;
    if (!close) {
      zql_strbuf_addc(id, *c++);
      continue;
    }
    const char *colon = memchr(c + 1, ':', (size_t)(close - c - 1));
    size_t nlen = (size_t)((colon ? colon : close) - (c + 1));
    const zql_val_t *val = NULL;
    for (uint32_t k = 0; k < pt->ncols && !val; k++)
      if (pt->cols[k].name && strlen(pt->cols[k].name) == nlen &&
          memcmp(pt->cols[k].name, c + 1, nlen) == 0)
        val = &row[k];
    if (!val) /* the analyzer checked the names; keep the text if it still does not match */
      zql_strbuf_add(id, c, (size_t)(close - c + 1));
    else if (colon && val->t == ZQL_V_DATE)
      zql_tz_format_sb(id, colon + 1, (size_t)(close - colon - 1), zql_tz_utc(), val->u.i);
    else
      zql_cell_text(id, val);
    c = close + 1;
  }
}

bool zql_outdoc_build(bson_t *d, const zql_plan_t *p, uint32_t t, const zql_val_t *row,
                      const zql_val_t *state, const char *id, size_t idlen,
                      const zql_outdoc_meta_t *meta)
{
  const zql_ptable_t *pt = &p->tables[t];
  bson_t vd;
  bool ok = true;
  if (p->key_doc)
    ok = key_doc(d, "_id", pt, row);
  else
    ok = bson_append_utf8(d, "_id", 3, id, (int)idlen);
  ok = ok && bson_append_document_begin(d, "value", 5, &vd);
  for (uint32_t c = 0; c < pt->ncols && ok; c++)
    if (!pt->cols[c].is_key)
      ok = zql_val_append_bson(&vd, pt->cols[c].name, -1, &row[c]);
  ok = ok && bson_append_document_end(d, &vd);
  if (ok && state && state->t == ZQL_V_DOC) {
    bson_t sd;
    ok = bson_init_static(&sd, state->u.p, state->len) &&
         bson_append_document(d, "state", 5, &sd);
  }
  ok = ok && key_doc(d, "k", pt, row);
  if (ok && pt->bucket_col >= 0 && row[pt->bucket_col].t == ZQL_V_DATE) {
    ok = bson_append_date_time(d, "b", 1, row[pt->bucket_col].u.i) &&
         bson_append_utf8(d, "tz", 2, p->buckets[pt->bucket].tz, -1);
  }
  if (ok && meta->bookkeeping)
    ok = bson_append_int64(d, "_hw", 3, meta->hw) && bson_append_int64(d, "_rev", 4, meta->rev) &&
         bson_append_int64(d, "_late", 5, meta->late);
  return ok;
}

void zql_outdoc_read_meta(const bson_t *doc, zql_outdoc_meta_t *meta)
{
  memset(meta, 0, sizeof *meta);
  meta->bookkeeping = true;
  bson_iter_t it;
  if (!bson_iter_init(&it, doc))
    return;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    if (k[0] != '_' || !(BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it)))
      continue;
    if (strcmp(k, "_hw") == 0)
      meta->hw = bson_iter_as_int64(&it);
    else if (strcmp(k, "_rev") == 0)
      meta->rev = bson_iter_as_int64(&it);
    else if (strcmp(k, "_late") == 0)
      meta->late = bson_iter_as_int64(&it);
  }
}

typedef struct timefilter {
  int64_t t1, t2;
  zql_store_visit_fn fn;
  void *arg;
} timefilter_t;

static int time_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  const timefilter_t *f = arg;
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "b") || !BSON_ITER_HOLDS_DATE_TIME(&it))
    return 0;
  int64_t b = bson_iter_date_time(&it);
  return b >= f->t1 && b < f->t2 ? f->fn(f->arg, id, idlen, doc) : 0;
}

int zql_outdoc_scan_time(zql_store_txn_t *t, const char *coll, const void *prefix, size_t plen,
                         int64_t t1, int64_t t2, zql_store_visit_fn fn, void *arg,
                         zql_strbuf_t *err)
{
  timefilter_t f = {t1, t2, fn, arg};
  return zql_store_prefix(t, coll, prefix, plen, time_visit, &f, err);
}
