/*
 * hashagg.h -- the group table of partial aggregation (stage 4, MAP combiner and REDUCE).
 *
 * A zql_hashagg_t maps a key (the concatenated normalised encodings of the key values,
 * exec/value.h) to a group: the key bytes and one block of aggregator states. It is an
 * open-addressing table (linear probing, power-of-two capacity, load <= 0.7) of
 * {hash, group pointer}; groups and key bytes live in the table's own arenas (one per
 * partition), states' heap parts are accounted through the aggregators' zql_aggctx_t. One
 * table belongs to one thread, except that the reduce releases its partitions from several.
 *
 * The hash is zql_hash_bytes(key) (XXH3, fixed seed), so partition = hash % R is the
 * same on every worker (R20).
 */
#ifndef ZQL_HASHAGG_H
#define ZQL_HASHAGG_H

#include "runtime/base/zql_common.h"

#include "exec/agg.h"
#include "runtime/base/arena.h"

typedef struct zql_group {
  uint64_t hash;
  uint32_t klen;
  const uint8_t *key;  /* klen bytes: the key encoding */
  unsigned char *states; /* the table's state block (layout: zql_aggslots_t offsets) */
} zql_group_t;

/* The layout of a table's aggregator slots. */
typedef struct zql_aggslots {
  uint32_t n;
  const zql_aggdef_t **defs;
  zql_aggparams_t *params;
  uint32_t *offset;    /* byte offset of slot i in a state block */
  bool *alias;         /* slot i reads another slot's state (quantiles of one expression
                          share one sketch): never init, add, merge, save or destroy it */
  uint32_t *naliases;  /* slots reading slot i's state: its skips count for each of them */
  uint32_t block;      /* bytes of one state block */
} zql_aggslots_t;

typedef struct zql_hashagg {
  const zql_aggslots_t *slots;
  zql_arena_t **parts; /* groups, keys, state blocks: one arena per partition (hash % n),
                          so a reduced partition's memory goes back at once */
  uint32_t nparts;
  struct hslot { uint64_t hash; zql_group_t *g; } *tab;
  uint64_t cap, n;
  size_t bytes;        /* arena bytes + table bytes (heap parts are in ctx->heap) */
} zql_hashagg_t;

int zql_hashagg_init(zql_hashagg_t *h, const zql_aggslots_t *slots, uint32_t nparts);
/* The group of key (created with every slot init-ed when new: *created = true).
 * NULL when out of memory. */
zql_group_t *zql_hashagg_get(zql_hashagg_t *h, const uint8_t *key, uint32_t klen,
                             uint64_t hash, bool *created);
/* Destroy every state (reporting heap in ctx) and empty the table for reuse. */
void zql_hashagg_clear(zql_hashagg_t *h, zql_aggctx_t *ctx);
void zql_hashagg_free(zql_hashagg_t *h, zql_aggctx_t *ctx);
/* Destroy the states of partition p's groups and free their memory (the reduce of p is
 * done with them). The table must not be used for lookups afterwards; other partitions
 * may be released concurrently by other threads. */
void zql_hashagg_release_part(zql_hashagg_t *h, uint32_t p, zql_aggctx_t *ctx);
/* Merge src's states into dst (same slots): 0, ZQL_E_NOMEM, or ZQL_AGG_MISMATCH. */
int zql_group_merge(const zql_aggslots_t *s, zql_group_t *dst, const zql_group_t *src,
                    zql_aggctx_t *ctx);

#endif
