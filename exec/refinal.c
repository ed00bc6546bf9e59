#include "runtime/base/zql_common.h"
/*
 * refinal.c -- merge saved states into one group and finalize it again (stage 4, used by
 * the results store's commits).
 *
 * Pipeline position: an incremental run (runtime/incr.c) executes the plan over the new
 * events only, with keep_states; for every output row whose document already exists in
 * the store, the stored states and the run's partial states are merged here (R11: the
 * merge is exact, so the result equals one run over all events) and the table's final
 * program recomputes every column from the merged block, as the reduce phase does.
 */
#include <string.h>

#include "exec/exec_int.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

/* Load the state of slot k from a state document into tmp; 0, ZQL_STORE-like 1 when the
 * document has no state for k, or < 0. */
static int load_slot(const zql_xplan_t *x, uint32_t t, uint32_t k, const bson_t *doc,
                     unsigned char *tmp, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  const zql_ptable_t *pt = &x->plan->tables[t];
  const zql_aggslots_t *sl = &x->slots[t];
  int32_t c = zql_state_column(pt, k);
  char hidden[16];
  const char *name = c >= 0 ? pt->cols[c].name : hidden;
  if (c < 0)
    snprintf(hidden, sizeof hidden, "#%" PRIu32, k);
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, name))
    return 1;
  const uint8_t *d;
  uint32_t dl;
  bson_t one;
  if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
    zql_strbuf_addf(err, "saved state '%s' is not a document", name);
    return ZQL_E_CORRUPT;
  }
  bson_iter_document(&it, &dl, &d);
  if (!bson_init_static(&one, d, dl)) {
    zql_strbuf_addf(err, "saved state '%s' is not a valid document", name);
    return ZQL_E_CORRUPT;
  }
  zql_strbuf_t e = ZQL_STRBUF_INIT;
  int rc = sl->defs[k]->load(tmp + sl->offset[k], &one, ctx, &e);
  if (rc) {
    zql_strbuf_addf(err, "saved state '%s': %s", name, e.len ? e.buf : "cannot be loaded");
    rc = rc < 0 && rc != ZQL_E_BAD_RECORD ? rc : ZQL_E_CORRUPT;
  }
  zql_strbuf_release(&e);
  return rc;
}

struct zql_refinal {
  const zql_xplan_t *x;
  uint32_t t;
  unsigned char *acc, *tmp;  /* state blocks */
  zql_val_t *regs, *fkeys;
  zql_vm_t vm;               /* reused: its batch arena is reset after each group */
};

void zql_refinal_free(zql_refinal_t *rf)
{
  if (!rf)
    return;
  if (rf->vm.x)
    zql_vm_free(&rf->vm);
  zql_free(rf->acc);
  zql_free(rf->tmp);
  zql_free(rf->regs);
  zql_free(rf->fkeys);
  zql_free(rf);
}

int zql_refinal_new(const zql_xplan_t *x, uint32_t t, zql_refinal_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  const zql_plan_t *p = x->plan;
  if (t >= p->ntables || p->tables[t].intermediate || p->tables[t].prepass) {
    zql_strbuf_adds(err, "refinalize: not an output table");
    return ZQL_E_USAGE;
  }
  const zql_ptable_t *pt = &p->tables[t];
  const zql_aggslots_t *sl = &x->slots[t];
  zql_refinal_t *rf = zql_calloc(1, sizeof *rf);
  if (!rf || !(rf->acc = zql_calloc(1, sl->block + 8)) ||
      !(rf->tmp = zql_calloc(1, sl->block + 8)) ||
      !(rf->regs = zql_calloc(pt->final.nregs ? pt->final.nregs : 1, sizeof *rf->regs)) ||
      !(rf->fkeys = zql_calloc(pt->nkeys ? pt->nkeys : 1, sizeof *rf->fkeys)) ||
      zql_vm_init(&rf->vm, x, false) != 0) {
    zql_refinal_free(rf);
    zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  rf->x = x;
  rf->t = t;
  *out = rf;
  return 0;
}

int zql_refinal_run(zql_refinal_t *rf, const zql_val_t *keys, const bson_t *const *states,
                    size_t n, zql_arena_t *arena, zql_val_t *cols, zql_val_t *state,
                    zql_strbuf_t *err)
{
  const zql_xplan_t *x = rf->x;
  uint32_t t = rf->t;
  const zql_ptable_t *pt = &x->plan->tables[t];
  const zql_aggslots_t *sl = &x->slots[t];
  unsigned char *acc = rf->acc, *tmp = rf->tmp;
  zql_vm_t *vm = &rf->vm;
  int rc = 0;
  for (uint32_t k = 0; k < sl->n; k++)
    if (!sl->alias[k])
      sl->defs[k]->init(acc + sl->offset[k], &sl->params[k]);
  for (size_t i = 0; i < n && !rc; i++)
    for (uint32_t k = 0; k < sl->n && !rc; k++) {
      if (sl->alias[k])
        continue;
      int r = load_slot(x, t, k, states[i], tmp, &vm->actx, err);
      if (r == 1)
        continue; /* no state: the init state (a slot added since: never, the identity
                     check refuses such changes without a rebuild) */
      if (r < 0) {
        rc = r;
        break;
      }
      r = sl->defs[k]->merge(acc + sl->offset[k], tmp + sl->offset[k], &vm->actx);
      sl->defs[k]->destroy(tmp + sl->offset[k], &vm->actx);
      if (r == ZQL_AGG_MISMATCH) {
        zql_strbuf_addf(err, "saved states of slot %" PRIu32 " (%s) have different kinds or "
                        "parameters", k, sl->defs[k]->name);
        rc = ZQL_E_CORRUPT;
      } else if (r < 0) {
        rc = r;
      }
    }
  if (!rc) {
    for (uint32_t i = 0; i < pt->nkeys; i++)
      rf->fkeys[i] = keys[i];
    zql_group_t g = {0, 0, NULL, acc};
    vm->fkeys = rf->fkeys;
    vm->fgroup = &g;
    rc = zql_vm_exec(vm, &pt->final, rf->regs, t);
    for (uint32_t c = 0; c < pt->ncols && !rc; c++)
      if (!zql_val_copy(arena, &rf->regs[pt->cols[c].reg], &cols[c]))
        rc = ZQL_E_NOMEM;
    if (!rc)
      rc = zql_save_states(x, t, acc, arena, state);
    vm->fgroup = NULL;
  }
  for (uint32_t k = 0; k < sl->n; k++)
    if (!sl->alias[k])
      sl->defs[k]->destroy(acc + sl->offset[k], &vm->actx);
  zql_arena_reset(vm->batch);
  if (rc == ZQL_E_NOMEM && err && !err->len)
    zql_strbuf_adds(err, "out of memory");
  return rc;
}

int zql_exec_refinalize(const zql_xplan_t *x, uint32_t t, const zql_val_t *keys,
                        const bson_t *const *states, size_t n, zql_arena_t *arena,
                        zql_val_t *cols, zql_val_t *state, zql_strbuf_t *err)
{
  zql_refinal_t *rf;
  int rc = zql_refinal_new(x, t, &rf, err);
  if (rc)
    return rc;
  rc = zql_refinal_run(rf, keys, states, n, arena, cols, state, err);
  zql_refinal_free(rf);
  return rc;
}
