/*
 * exec_int.h -- executor internals shared by vm.c, extract.c and run.c (stage 4).
 *
 * zql_xplan_t is a plan bound for execution (read-only, shared by all threads);
 * zql_vm_t is one thread's machine: registers, iterators, the batch arena, counters and
 * the group tables the map program feeds.
 */
#ifndef ZQL_EXEC_INT_H
#define ZQL_EXEC_INT_H

#include "runtime/base/zql_common.h"

#include <regex.h>

#include "exec/agg.h"
#include "exec/func.h"
#include "exec/hashagg.h"
#include "exec/value.h"
#include "exec/zql_exec.h"
#include "planner/plan.h"
#include "runtime/base/tz.h"

/* The event-path trie of the extraction pass (extract.c). */
typedef struct zql_xnode {
  const char *name;
  uint32_t len;
  int32_t reg;             /* register of this path, or -1 */
  struct zql_xnode *kids;
  uint32_t nkids;
} zql_xnode_t;

/* A user reducer bound to a plan (exec/agg_user.c runs its programs). */
struct zql_ureducer {
  const struct zql_xplan *x;
  const zql_preducer_t *r;
};

struct zql_xplan {
  const zql_plan_t *plan;
  zql_arena_t *arena;
  int64_t now_ms;
  zql_val_t *consts;
  uint32_t nconsts;
  const regex_t **regex;   /* per constant: compiled when a MATCH uses it */
  const zql_scalar_t **fns;/* per call site */
  void **aux;
  zql_bucket_t *buckets;
  zql_aggslots_t *slots;   /* per table */
  zql_xnode_t root;        /* extraction trie */
  int32_t row_reg;         /* register of the whole event, or -1 */
  bool one_worker;         /* a reducer without merge: partial states cannot combine */
  uint16_t *iter_regs;     /* the map program's iterator registers (reset per event) */
  uint32_t niter_regs;
};

/* Per-message error counts of one thread (small; merged at the end). */
typedef struct zql_errtab {
  zql_errcount_t *v;
  uint32_t n, cap;
} zql_errtab_t;

/* Session keys: each entity's session starts, from the pre-pass (exec/run.c). */
typedef struct zql_sessidx {
  struct zql_sslot {
    uint64_t hash;
    const uint8_t *key;   /* the entity's key encoding */
    uint32_t klen;
    uint32_t n;
    const int64_t *starts; /* increasing */
  } *tab;                 /* open addressing, power-of-two cap */
  uint64_t cap;
  zql_arena_t *arena;
} zql_sessidx_t;

typedef struct zql_iter {
  bson_iter_t it;
  uint8_t state;           /* 0 iterating, 1 keep-empty row pending, 2 done */
} zql_iter_t;

typedef struct zql_vm zql_vm_t;
struct zql_vm {
  const zql_xplan_t *x;
  zql_val_t *regs;         /* map program registers */
  zql_iter_t *iters;       /* by register index (ITER dst) */
  zql_arena_t *batch;      /* reset between batches */
  zql_fnctx_t fn;
  zql_hashagg_t *tables;   /* one per plan table */
  zql_group_t **cur;       /* current group per table */
  zql_strbuf_t key;        /* key encoding scratch */
  zql_aggctx_t actx;
  zql_errtab_t errs;
  uint64_t overflow, lossy, rows, events;
  int64_t max_ts;          /* the largest event timestamp read (INT64_MIN: none) */
  int64_t seq;             /* _seq of the event being mapped */
  zql_sessidx_t *const *sess; /* per table: the sessions index of a prepass table */
  int64_t *bcache;         /* per bucket spec: the last bucket [start, end) (events come
                              mostly in time order, so most lookups hit it) */
  int oom;                 /* ZQL_E_NOMEM seen */
  /* row queries: ROW hands the row's registers here */
  int (*row_fn)(struct zql_vm *vm, const zql_val_t *v, uint32_t n);
  void *row_arg;
  /* final programs */
  const zql_group_t *fgroup;
  zql_val_t *fkeys;        /* decoded keys of fgroup */
  const zql_aggparams_t *fparams;
};

int zql_vm_init(zql_vm_t *vm, const zql_xplan_t *x, bool with_tables);
void zql_vm_free(zql_vm_t *vm);
/* Run one program over vm->regs (map) or regs (final). Returns 0 or ZQL_E_NOMEM. */
int zql_vm_exec(zql_vm_t *vm, const zql_prog_t *prog, zql_val_t *regs, uint32_t table);
void zql_errtab_add(zql_errtab_t *t, const char *msg, uint64_t n);
/* The saved states of one state block of table t as a DOC value (bytes in arena): under
 * each column that is exactly one aggregator call, that call's state (shared quantile
 * sketches under each of their columns); then every other slot that is no alias under
 * "#<slot>" (# cannot start a ZQL name), so the document restores the whole block.
 * exec/run.c. */
int32_t zql_state_column(const zql_ptable_t *pt, uint32_t slot); /* column of slot, or -1 */
int zql_save_states(const zql_xplan_t *x, uint32_t t, const unsigned char *acc,
                    zql_arena_t *arena, zql_val_t *out);

/* Fill the extraction registers from one event (extract.c). */
void zql_extract(zql_vm_t *vm, const zql_event_t *ev);
int zql_extract_build(zql_xplan_t *x, zql_strbuf_t *err);

#endif
