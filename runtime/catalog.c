#include "runtime/base/zql_common.h"
/*
 * catalog.c -- reading the catalog of incremental aggregates from the results store
 * (runtime services; layout in runtime/catalog.h and docs/incremental.md).
 *
 * Pipeline position: `zql agg add` writes entries (runtime/incr.c); every reader of stored
 * results (`from agg NAME`, `zql agg show`, the run loop) comes here first to learn how
 * NAME was compiled and where its outputs live.
 */
#include "runtime/catalog.h"

#include <string.h>

#include "runtime/base/error.h"

static int corrupt(zql_strbuf_t *err, const char *name, const char *field)
{
  if (err)
    zql_strbuf_addf(err, "results store: catalog entry '%s': field '%s' is missing or has the "
                    "wrong type", name, field);
  return ZQL_E_CORRUPT;
}

int zql_catalog_get(zql_store_txn_t *t, const char *name, zql_catentry_t *e, bson_t *doc,
                    zql_strbuf_t *err)
{
  memset(e, 0, sizeof *e);
  int rc = zql_store_get(t, ZQL_CAT_COLL, name, strlen(name), doc, err);
  if (rc)
    return rc;
  bson_iter_t it;
  if (!bson_iter_init(&it, doc))
    return corrupt(err, name, "_id");
  bool have_src = false, have_plan = false;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    uint32_t len;
    if (strcmp(k, "name") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
      e->name = bson_iter_utf8(&it, NULL);
    } else if (strcmp(k, "file") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
      e->file = bson_iter_utf8(&it, NULL);
    } else if (strcmp(k, "source") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
      e->source = bson_iter_utf8(&it, &len);
      e->source_len = len;
      have_src = true;
    } else if (strcmp(k, "source_hash") == 0 && BSON_ITER_HOLDS_INT64(&it)) {
      e->source_hash = bson_iter_int64(&it);
    } else if (strcmp(k, "plan") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_document(&it, &len, &e->plan);
      e->plan_len = len;
      have_plan = true;
    } else if (strcmp(k, "fingerprint") == 0 && BSON_ITER_HOLDS_INT64(&it)) {
      e->fingerprint = bson_iter_int64(&it);
    } else if (strcmp(k, "identity") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
      e->identity = bson_iter_utf8(&it, NULL);
    } else if (strcmp(k, "version") == 0 && BSON_ITER_HOLDS_INT32(&it)) {
      e->version = bson_iter_int32(&it);
    } else if (strcmp(k, "created") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
      e->created = bson_iter_date_time(&it);
    } else if (strcmp(k, "updated") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
      e->updated = bson_iter_date_time(&it);
    }
  }
  if (!e->name || strcmp(e->name, name) != 0)
    return corrupt(err, name, "name");
  if (!have_src)
    return corrupt(err, name, "source");
  if (!have_plan)
    return corrupt(err, name, "plan");
  if (!e->identity)
    return corrupt(err, name, "identity");
  if (!e->file)
    e->file = "";
  return 0;
}
