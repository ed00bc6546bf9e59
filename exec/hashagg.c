/*
 * hashagg.c -- the group table of partial aggregation (stage 4, MAP combiner and REDUCE).
 *
 * See hashagg.h. Open addressing with linear probing over {hash, group*} slots; the
 * full 64-bit hash is compared before the key bytes, so probes rarely touch group
 * memory. Groups, keys and state blocks are bump-allocated in the table's arena (they
 * are never freed one by one: a table is cleared or freed as a whole, after a spill or
 * at the end of a task).
 */
#include "runtime/base/zql_common.h"

#include "exec/hashagg.h"

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

int zql_hashagg_init(zql_hashagg_t *h, const zql_aggslots_t *slots, uint32_t nparts)
{
  memset(h, 0, sizeof *h);
  h->slots = slots;
  h->nparts = nparts ? nparts : 1;
  h->parts = zql_calloc(h->nparts, sizeof *h->parts);
  h->cap = 1024;
  h->tab = zql_calloc(h->cap, sizeof *h->tab);
  bool ok = h->parts && h->tab;
  for (uint32_t i = 0; ok && i < h->nparts; i++)
    ok = (h->parts[i] = zql_arena_create(NULL)) != NULL;
  if (!ok) {
    for (uint32_t i = 0; h->parts && i < h->nparts; i++)
      zql_arena_delete(h->parts[i]);
    zql_free(h->parts);
    zql_free(h->tab);
    memset(h, 0, sizeof *h);
    return ZQL_E_NOMEM;
  }
  h->bytes = h->cap * sizeof *h->tab;
  return 0;
}

static bool grow(zql_hashagg_t *h)
{
  uint64_t cap = h->cap * 2;
  struct hslot *t = zql_calloc(cap, sizeof *t);
  if (!t)
    return false;
  for (uint64_t i = 0; i < h->cap; i++) {
    if (!h->tab[i].g)
      continue;
    uint64_t j = h->tab[i].hash & (cap - 1);
    while (t[j].g)
      j = (j + 1) & (cap - 1);
    t[j] = h->tab[i];
  }
  zql_free(h->tab);
  h->tab = t;
  h->bytes += (cap - h->cap) * sizeof *t;
  h->cap = cap;
  return true;
}

zql_group_t *zql_hashagg_get(zql_hashagg_t *h, const uint8_t *key, uint32_t klen,
                             uint64_t hash, bool *created)
{
  uint64_t mask = h->cap - 1;
  uint64_t i = hash & mask;
  for (;;) {
    zql_group_t *g = h->tab[i].g;
    if (!g)
      break;
    if (h->tab[i].hash == hash && g->klen == klen && (!klen || memcmp(g->key, key, klen) == 0)) {
      *created = false;
      return g;
    }
    i = (i + 1) & mask;
  }
  /* new group */
  if ((h->n + 1) * 10 > h->cap * 7) {
    if (!grow(h))
      return NULL;
    return zql_hashagg_get(h, key, klen, hash, created);
  }
  const zql_aggslots_t *s = h->slots;
  size_t need = sizeof(zql_group_t) + s->block + klen + 8;
  zql_group_t *g = zql_arena_alloc(h->parts[hash % h->nparts], need);
  if (!g)
    return NULL;
  g->hash = hash;
  g->klen = klen;
  g->states = (unsigned char *)(g + 1);
  uint8_t *kb = g->states + s->block;
  if (klen)
    memcpy(kb, key, klen);
  g->key = kb;
  for (uint32_t k = 0; k < s->n; k++)
    if (!s->alias[k])
      s->defs[k]->init(g->states + s->offset[k], &s->params[k]);
  h->tab[i].hash = hash;
  h->tab[i].g = g;
  h->n++;
  h->bytes += need;
  *created = true;
  return g;
}

static void destroy_all(zql_hashagg_t *h, zql_aggctx_t *ctx)
{
  const zql_aggslots_t *s = h->slots;
  for (uint64_t i = 0; i < h->cap; i++) {
    zql_group_t *g = h->tab[i].g;
    if (!g || !h->parts[h->tab[i].hash % h->nparts])
      continue; /* empty, or in a partition already released */
    for (uint32_t k = 0; k < s->n; k++)
      if (!s->alias[k])
        s->defs[k]->destroy(g->states + s->offset[k], ctx);
  }
}

void zql_hashagg_clear(zql_hashagg_t *h, zql_aggctx_t *ctx)
{
  destroy_all(h, ctx);
  memset(h->tab, 0, h->cap * sizeof *h->tab);
  for (uint32_t i = 0; i < h->nparts; i++)
    if (h->parts[i])
      zql_arena_reset(h->parts[i]);
  h->n = 0;
  h->bytes = h->cap * sizeof *h->tab;
}

void zql_hashagg_free(zql_hashagg_t *h, zql_aggctx_t *ctx)
{
  if (!h->tab)
    return;
  destroy_all(h, ctx);
  zql_free(h->tab);
  for (uint32_t i = 0; i < h->nparts; i++)
    zql_arena_delete(h->parts[i]);
  zql_free(h->parts);
  memset(h, 0, sizeof *h);
}

void zql_hashagg_release_part(zql_hashagg_t *h, uint32_t p, zql_aggctx_t *ctx)
{
  if (!h->tab || p >= h->nparts || !h->parts[p])
    return;
  const zql_aggslots_t *s = h->slots;
  for (uint64_t i = 0; i < h->cap; i++) {
    zql_group_t *g = h->tab[i].g;
    if (!g || h->tab[i].hash % h->nparts != p)
      continue;
    for (uint32_t k = 0; k < s->n; k++)
      if (!s->alias[k])
        s->defs[k]->destroy(g->states + s->offset[k], ctx);
  }
  zql_arena_delete(h->parts[p]);
  h->parts[p] = NULL;
}

int zql_group_merge(const zql_aggslots_t *s, zql_group_t *dst, const zql_group_t *src,
                    zql_aggctx_t *ctx)
{
  int rc = 0;
  for (uint32_t k = 0; k < s->n; k++) {
    if (s->alias[k])
      continue;
    int r = s->defs[k]->merge(dst->states + s->offset[k], src->states + s->offset[k], ctx);
    if (r < 0)
      return r;
    if (r > 0)
      rc = r;
  }
  return rc;
}
