/*
 * vm.c -- the register bytecode interpreter of plan programs (stage 4, MAP and REDUCE).
 *
 * Pipeline position: planner/build.c compiles expressions and row operations into
 * programs (planner/oplist.h); zql_xplan_prepare binds a plan once per run (constants as
 * values, scalar functions prepared, zones loaded, aggregators looked up); zql_vm_exec
 * runs the map program once per event (after exec/extract.c filled the path registers)
 * and each table's final program once per group.
 *
 * Semantics (design/ZQL.md R1-R5): operators propagate ERROR (the first ERROR operand
 * wins); arithmetic over a MISSING operand gives MISSING, over NULL gives NULL (so
 * def(extra.a + 1) is false when extra.a is absent); comparisons are three-valued
 * (zql_val_eq3/cmp3); `and`/`or` follow the SQL truth tables with ERROR propagating;
 * `/` always gives a double, `%` of two integers an integer (sign of the dividend);
 * int64 overflow in + - * promotes to double and counts `_overflow`; a date plus or minus
 * a duration (an integer of milliseconds) is a date, and a date minus a date a duration.
 *
 * Memory: values built here (strings, arrays, documents) go into the batch arena
 * (vm->batch), which the caller resets between batches of events.
 */
#include "runtime/base/zql_common.h"

#include <math.h>

#include "exec/exec_int.h"
#include "exec/func_regex.h"
#include "exec/func_time.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

/* {==== binding a plan =================================================================== */

static int bind_slots(zql_xplan_t *x, const zql_ptable_t *t, zql_aggslots_t *s,
                      zql_strbuf_t *err)
{
  s->n = t->naggs;
  s->defs = zql_arena_calloc(x->arena, t->naggs ? t->naggs : 1, sizeof *s->defs);
  s->params = zql_arena_calloc(x->arena, t->naggs ? t->naggs : 1, sizeof *s->params);
  s->offset = zql_arena_calloc(x->arena, t->naggs ? t->naggs : 1, sizeof *s->offset);
  s->alias = zql_arena_calloc(x->arena, t->naggs ? t->naggs : 1, sizeof *s->alias);
  s->naliases = zql_arena_calloc(x->arena, t->naggs ? t->naggs : 1, sizeof *s->naliases);
  if (!s->defs || !s->params || !s->offset || !s->alias || !s->naliases)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  uint32_t off = 0;
  for (uint32_t i = 0; i < t->naggs; i++) {
    const zql_pagg_t *a = &t->aggs[i];
    const zql_aggdef_t *d = zql_agg_lookup(a->func);
    if (!d)
      return zql_fail(err, ZQL_E_BAD_PLAN, "unknown aggregator '%s'", a->func);
    zql_aggparams_t *p = &s->params[i];
    const char *kind = a->inner ? a->inner : a->func; /* merge: the merged aggregator's */
    zql_aggparams_default(kind, p);
    if (a->has_n)
      p->n = a->n;
    p->else_hll = a->else_hll;
    if (strcmp(kind, "quantile") == 0) {
      p->q = a->q;
      if (a->compression > 0)
        p->compression = a->compression;
    }
    p->edges = a->edges;
    p->nedges = a->nedges;
    p->nconds = a->nconds;
    p->window_ms = a->window_ms;
    p->pattern = a->pattern;
    p->inner = a->inner;
    if (a->inner && !zql_agg_lookup(a->inner))
      return zql_fail(err, ZQL_E_BAD_PLAN, "unknown aggregator '%s'", a->inner);
    if (a->reducer >= 0) {
      if ((uint32_t)a->reducer >= x->plan->nreducers)
        return zql_fail(err, ZQL_E_BAD_PLAN, "reducer %d out of range", (int)a->reducer);
      zql_ureducer_t *u = zql_arena_calloc(x->arena, 1, sizeof *u);
      if (!u)
        return zql_fail(err, ZQL_E_NOMEM, "out of memory");
      u->x = x;
      u->r = &x->plan->reducers[a->reducer];
      p->user = u;
      if (!u->r->has_merge)
        x->one_worker = true;
    }
    s->defs[i] = d;
    if (a->share >= 0) { /* reads slot `share`'s state: same aggregator, no state of its own */
      if ((uint32_t)a->share >= i || s->defs[a->share] != d)
        return zql_fail(err, ZQL_E_BAD_PLAN, "slot %u shares a state it cannot", i);
      s->offset[i] = s->offset[a->share];
      s->alias[i] = true;
      s->naliases[a->share]++;
      continue;
    }
    s->offset[i] = off;
    off += (d->state_size + 7u) & ~7u;
  }
  s->block = off;
  return 0;
}

int zql_xplan_prepare(const zql_plan_t *p, int64_t now_ms, zql_xplan_t **out,
                      zql_strbuf_t *err)
{
  *out = NULL;
  zql_arena_t *a = zql_arena_create(NULL);
  zql_xplan_t *x = a ? zql_arena_calloc(a, 1, sizeof *x) : NULL;
  if (!x) {
    zql_arena_delete(a);
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  }
  x->plan = p;
  x->arena = a;
  x->now_ms = now_ms;
  x->row_reg = -1;
  int rc = 0;

  /* constants */
  bson_iter_t it;
  x->nconsts = p->nconsts;
  x->consts = zql_arena_calloc(a, p->nconsts ? p->nconsts : 1, sizeof *x->consts);
  x->regex = zql_arena_calloc(a, p->nconsts ? p->nconsts : 1, sizeof *x->regex);
  if (!x->consts || !x->regex) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    goto fail;
  }
  uint32_t k = 0;
  if (bson_iter_init(&it, p->consts)) {
    while (bson_iter_next(&it) && k < p->nconsts) {
      zql_val_t v;
      zql_val_from_iter(&it, &v);
      if (!zql_val_copy(a, &v, &x->consts[k])) {
        rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
        goto fail;
      }
      k++;
    }
  }
  if (k != p->nconsts) {
    rc = zql_fail(err, ZQL_E_BAD_PLAN, "the plan has %u constants, %u expected", k,
                   p->nconsts);
    goto fail;
  }

  /* regexes used by MATCH, in every program: map, pre-pass, finals, reducer parts */
  uint32_t nprogs = 2 + p->ntables + 4 * p->nreducers;
  for (uint32_t pi = 0; pi < nprogs; pi++) {
    const zql_prog_t *pr;
    if (pi == 0)
      pr = &p->map;
    else if (pi == 1)
      pr = &p->pre;
    else if (pi < 2 + p->ntables)
      pr = &p->tables[pi - 2].final;
    else {
      const zql_preducer_t *u = &p->reducers[(pi - 2 - p->ntables) / 4];
      uint32_t part = (pi - 2 - p->ntables) % 4;
      pr = part == 0 ? &u->init : part == 1 ? &u->add : part == 2 ? &u->merge : &u->final;
    }
    for (uint32_t i = 0; i < pr->n; i++) {
      const zql_insn_t *in = &pr->code[i];
      if (in->op != ZQL_I_MATCH || x->regex[in->c])
        continue;
      if ((rc = zql_regex_prepare(a, &x->consts[in->c], &x->regex[in->c], err)) != 0)
        goto fail;
    }
  }

  /* scalar call sites */
  x->fns = zql_arena_calloc(a, p->ncalls ? p->ncalls : 1, sizeof *x->fns);
  x->aux = zql_arena_calloc(a, p->ncalls ? p->ncalls : 1, sizeof *x->aux);
  if (!x->fns || !x->aux) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    goto fail;
  }
  for (uint32_t i = 0; i < p->ncalls; i++) {
    const zql_pcall_t *c = &p->calls[i];
    const zql_scalar_t *f = zql_scalar_lookup(c->name, c->nargs);
    if (!f) {
      rc = zql_fail(err, ZQL_E_BAD_PLAN, "unknown function %s/%u", c->name,
                     (unsigned)c->nargs);
      goto fail;
    }
    x->fns[i] = f;
    if (!f->prepare)
      continue;
    zql_val_t *kv = zql_arena_calloc(a, c->nargs ? c->nargs : 1, sizeof *kv);
    bool *isk = zql_arena_calloc(a, c->nargs ? c->nargs : 1, sizeof *isk);
    if (!kv || !isk) {
      rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
      goto fail;
    }
    for (uint16_t j = 0; j < c->nargs; j++) {
      if (c->konst[j] >= 0 && (uint32_t)c->konst[j] < x->nconsts) {
        kv[j] = x->consts[c->konst[j]];
        isk[j] = true;
      }
    }
    zql_fnprep_t fp = {a, c->nargs, kv, isk, NULL, err};
    if ((rc = f->prepare(&fp)) != 0)
      goto fail;
    x->aux[i] = fp.aux;
  }

  /* buckets */
  x->buckets = zql_arena_calloc(a, p->nbuckets ? p->nbuckets : 1, sizeof *x->buckets);
  if (!x->buckets) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    goto fail;
  }
  for (uint32_t i = 0; i < p->nbuckets; i++) {
    const zql_pbucket_t *b = &p->buckets[i];
    if ((rc = zql_bucket_setup(&x->buckets[i], b->unit, b->every, b->tz, b->week_start,
                               b->origin, err)) != 0)
      goto fail;
  }

  /* aggregators */
  x->slots = zql_arena_calloc(a, p->ntables ? p->ntables : 1, sizeof *x->slots);
  if (!x->slots) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    goto fail;
  }
  for (uint32_t i = 0; i < p->ntables; i++)
    if ((rc = bind_slots(x, &p->tables[i], &x->slots[i], err)) != 0)
      goto fail;

  if ((rc = zql_extract_build(x, err)) != 0)
    goto fail;
  /* the map program's iterators, reset before each event so that no NEXT can see an
   * iterator of an earlier event (a compiled plan always sets them first anyway) */
  x->iter_regs = zql_arena_calloc(a, p->map.n ? p->map.n : 1, sizeof *x->iter_regs);
  if (!x->iter_regs) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
    goto fail;
  }
  for (uint32_t i = 0; i < p->map.n; i++)
    if (p->map.code[i].op == ZQL_I_ITER)
      x->iter_regs[x->niter_regs++] = p->map.code[i].dst;
  /* (the pre-pass program shares map's registers; its iterators are reset too) */
  if (p->pre.n) {
    uint16_t *more = zql_arena_calloc(a, x->niter_regs + p->pre.n, sizeof *more);
    if (!more) {
      rc = zql_fail(err, ZQL_E_NOMEM, "out of memory");
      goto fail;
    }
    memcpy(more, x->iter_regs, x->niter_regs * sizeof *more);
    x->iter_regs = more;
    for (uint32_t i = 0; i < p->pre.n; i++)
      if (p->pre.code[i].op == ZQL_I_ITER)
        x->iter_regs[x->niter_regs++] = p->pre.code[i].dst;
  }
  *out = x;
  return 0;
fail:
  zql_arena_delete(a);
  return rc;
}

void zql_xplan_free(zql_xplan_t *x)
{
  if (x)
    zql_arena_delete(x->arena);
}

/* The effective bound in ms: an exclusive lower / inclusive upper bound moves by 1 ms
 * (the scan range is [lo, hi)). */
static int64_t bound_ms(const zql_xplan_t *x, const zql_bound_t *b, int64_t dflt)
{
  int64_t v;
  if (b->kind == ZQL_BOUND_ABS)
    v = b->ms;
  else if (b->kind != ZQL_BOUND_NOW || __builtin_add_overflow(x->now_ms, b->ms, &v))
    return dflt;
  if (b->edge && __builtin_add_overflow(v, 1, &v))
    return dflt;
  return v;
}

void zql_xplan_ts_range(const zql_xplan_t *x, int64_t *ts_lo, int64_t *ts_hi)
{
  *ts_lo = bound_ms(x, &x->plan->ts_lo, INT64_MIN);
  *ts_hi = bound_ms(x, &x->plan->ts_hi, INT64_MAX);
}

/* }==== */

/* {==== machine ========================================================================== */

void zql_errtab_add(zql_errtab_t *t, const char *msg, uint64_t n)
{
  for (uint32_t i = 0; i < t->n; i++)
    if (t->v[i].msg == msg || strcmp(t->v[i].msg, msg) == 0) {
      t->v[i].n += n;
      return;
    }
  if (t->n == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : 8;
    zql_errcount_t *v = zql_reallocarray(t->v, cap, sizeof *v);
    if (!v)
      return; /* the count is lost, never the run */
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n++] = (zql_errcount_t){msg, n};
}

int zql_vm_init(zql_vm_t *vm, const zql_xplan_t *x, bool with_tables)
{
  memset(vm, 0, sizeof *vm);
  vm->x = x;
  vm->max_ts = INT64_MIN;
  const zql_plan_t *p = x->plan;
  uint32_t nregs = p->map.nregs ? p->map.nregs : 1;
  vm->regs = zql_calloc(nregs, sizeof *vm->regs);
  vm->iters = zql_calloc(nregs, sizeof *vm->iters);
  vm->batch = zql_arena_create(NULL);
  vm->cur = zql_calloc(p->ntables ? p->ntables : 1, sizeof *vm->cur);
  vm->tables = zql_calloc(p->ntables ? p->ntables : 1, sizeof *vm->tables);
  if (!vm->regs || !vm->iters || !vm->batch || !vm->cur || !vm->tables) {
    zql_vm_free(vm);
    return ZQL_E_NOMEM;
  }
  vm->fn.arena = vm->batch;
  vm->fn.now_ms = x->now_ms;
  vm->bcache = zql_calloc(2 * (p->nbuckets ? p->nbuckets : 1), sizeof *vm->bcache);
  if (!vm->bcache) {
    zql_vm_free(vm);
    return ZQL_E_NOMEM;
  }
  for (uint32_t i = 0; i < p->nbuckets; i++) {
    vm->bcache[2 * i] = 1; /* an empty range: [1, 0) */
    vm->bcache[2 * i + 1] = 0;
  }
  if (with_tables) {
    for (uint32_t i = 0; i < p->ntables; i++)
      if (zql_hashagg_init(&vm->tables[i], &x->slots[i], p->partitions) != 0) {
        zql_vm_free(vm);
        return ZQL_E_NOMEM;
      }
  }
  return 0;
}

void zql_vm_free(zql_vm_t *vm)
{
  if (vm->tables && vm->x)
    for (uint32_t i = 0; i < vm->x->plan->ntables; i++)
      zql_hashagg_free(&vm->tables[i], &vm->actx);
  zql_free(vm->tables);
  zql_free(vm->regs);
  zql_free(vm->iters);
  zql_free(vm->cur);
  zql_free(vm->bcache);
  zql_free(vm->errs.v);
  zql_strbuf_release(&vm->key);
  zql_arena_delete(vm->batch);
  memset(vm, 0, sizeof *vm);
}

static bool truthy(const zql_val_t *v) { return v->t == ZQL_V_BOOL && v->u.b; }

static zql_val_t err_of(const zql_val_t *a, const zql_val_t *b)
{
  return a->t == ZQL_V_ERROR ? *a : *b;
}

/* Arithmetic over an absent operand is absent (MISSING), over a null one null. */
static zql_val_t absent_of(const zql_val_t *a, const zql_val_t *b)
{
  return a->t == ZQL_V_MISSING || b->t == ZQL_V_MISSING ? zql_val_missing() : zql_val_null();
}

/* + - * over numbers (R4), dates and durations. */
static zql_val_t arith(zql_vm_t *vm, zql_opcode_t op, const zql_val_t *a, const zql_val_t *b)
{
  if (a->t == ZQL_V_ERROR || b->t == ZQL_V_ERROR)
    return err_of(a, b);
  if (zql_val_is_nullish(a) || zql_val_is_nullish(b))
    return absent_of(a, b);
  if (a->t == ZQL_V_INT && b->t == ZQL_V_INT) {
    int64_t r;
    bool ovf;
    switch (op) {
    case ZQL_I_ADD: ovf = __builtin_add_overflow(a->u.i, b->u.i, &r); break;
    case ZQL_I_SUB: ovf = __builtin_sub_overflow(a->u.i, b->u.i, &r); break;
    default: ovf = __builtin_mul_overflow(a->u.i, b->u.i, &r); break;
    }
    if (!ovf)
      return zql_val_int(r);
    vm->overflow++;
    double x = (double)a->u.i, y = (double)b->u.i;
    return zql_val_double(op == ZQL_I_ADD ? x + y : op == ZQL_I_SUB ? x - y : x * y);
  }
  if (zql_val_is_num(a) && zql_val_is_num(b)) {
    double x = zql_val_num(a), y = zql_val_num(b);
    return zql_val_double(op == ZQL_I_ADD ? x + y : op == ZQL_I_SUB ? x - y : x * y);
  }
  /* dates: date +- duration, duration + date, date - date */
  if (a->t == ZQL_V_DATE && b->t == ZQL_V_INT && op != ZQL_I_MUL) {
    int64_t r;
    if (op == ZQL_I_ADD ? __builtin_add_overflow(a->u.i, b->u.i, &r)
                        : __builtin_sub_overflow(a->u.i, b->u.i, &r))
      return zql_val_error("date arithmetic out of range");
    return zql_val_date(r);
  }
  if (a->t == ZQL_V_INT && b->t == ZQL_V_DATE && op == ZQL_I_ADD) {
    int64_t r;
    if (__builtin_add_overflow(a->u.i, b->u.i, &r))
      return zql_val_error("date arithmetic out of range");
    return zql_val_date(r);
  }
  if (a->t == ZQL_V_DATE && b->t == ZQL_V_DATE && op == ZQL_I_SUB) {
    int64_t r;
    if (__builtin_sub_overflow(a->u.i, b->u.i, &r))
      return zql_val_error("date arithmetic out of range");
    return zql_val_int(r);
  }
  return zql_val_error(op == ZQL_I_ADD   ? "+: operands are not numbers"
                       : op == ZQL_I_SUB ? "-: operands are not numbers"
                                         : "*: operands are not numbers");
}

static zql_val_t divmod(zql_opcode_t op, const zql_val_t *a, const zql_val_t *b)
{
  if (a->t == ZQL_V_ERROR || b->t == ZQL_V_ERROR)
    return err_of(a, b);
  if (zql_val_is_nullish(a) || zql_val_is_nullish(b))
    return absent_of(a, b);
  if (!zql_val_is_num(a) || !zql_val_is_num(b))
    return zql_val_error(op == ZQL_I_DIV ? "/: operands are not numbers"
                                         : "%: operands are not numbers");
  if (op == ZQL_I_MOD && a->t == ZQL_V_INT && b->t == ZQL_V_INT) {
    if (b->u.i == 0)
      return zql_val_error("modulo by zero");
    if (b->u.i == -1)
      return zql_val_int(0); /* INT64_MIN % -1 is 0, not a trap */
    return zql_val_int(a->u.i % b->u.i);
  }
  double x = zql_val_num(a), y = zql_val_num(b);
  if (y == 0)
    return zql_val_error(op == ZQL_I_DIV ? "division by zero" : "modulo by zero");
  return zql_val_double(op == ZQL_I_DIV ? x / y : fmod(x, y));
}

static zql_val_t compare(zql_opcode_t op, const zql_val_t *a, const zql_val_t *b)
{
  if (a->t == ZQL_V_ERROR || b->t == ZQL_V_ERROR)
    return err_of(a, b);
  if (op == ZQL_I_EQ || op == ZQL_I_NE) {
    int e = zql_val_eq3(a, b);
    if (e < 0)
      return zql_val_null();
    return zql_val_bool(op == ZQL_I_EQ ? e == 1 : e == 0);
  }
  int c;
  if (zql_val_cmp3(a, b, &c) < 0)
    return zql_val_null();
  switch (op) {
  case ZQL_I_LT: return zql_val_bool(c < 0);
  case ZQL_I_LE: return zql_val_bool(c <= 0);
  case ZQL_I_GT: return zql_val_bool(c > 0);
  default: return zql_val_bool(c >= 0);
  }
}

/* Three-valued and/or: 1 TRUE, 0 FALSE, -1 NULL (NULL, MISSING and non-booleans). */
static int tv(const zql_val_t *v)
{
  return v->t == ZQL_V_BOOL ? (v->u.b ? 1 : 0) : -1;
}

static zql_val_t logic(zql_opcode_t op, const zql_val_t *a, const zql_val_t *b)
{
  if (a->t == ZQL_V_ERROR || b->t == ZQL_V_ERROR)
    return err_of(a, b);
  int x = tv(a), y = tv(b);
  if (op == ZQL_I_AND) {
    if (x == 0 || y == 0)
      return zql_val_bool(false);
    if (x == 1 && y == 1)
      return zql_val_bool(true);
    return zql_val_null();
  }
  if (x == 1 || y == 1)
    return zql_val_bool(true);
  if (x == 0 && y == 0)
    return zql_val_bool(false);
  return zql_val_null();
}

/* The document or array built in *b as a value whose bytes live in the batch arena; b is
 * destroyed either way. */
static zql_val_t into_batch(zql_vm_t *vm, bson_t *b, bool is_array)
{
  uint8_t *m = zql_arena_alloc(vm->batch, b->len);
  if (!m) {
    bson_destroy(b);
    vm->oom = ZQL_E_NOMEM;
    return zql_val_error("out of memory");
  }
  memcpy(m, bson_get_data(b), b->len);
  uint32_t len = b->len;
  bson_destroy(b);
  return zql_val_doc(m, len, is_array);
}

/* Build a BSON array or document from registers into the batch arena. */
static zql_val_t build_container(zql_vm_t *vm, const zql_val_t *r, uint32_t n,
                                 const zql_pdocspec_t *spec)
{
  bson_t b = BSON_INITIALIZER;
  char kb[16];
  for (uint32_t i = 0; i < n; i++) {
    const char *key;
    int klen = -1;
    if (spec) {
      key = spec->names[i];
    } else {
      bson_uint32_to_string(i, &key, kb, sizeof kb);
      if (r[i].t == ZQL_V_MISSING) {
        zql_val_t nul = zql_val_null(); /* arrays keep positions: MISSING becomes null */
        zql_val_append_bson(&b, key, klen, &nul);
        continue;
      }
    }
    if (!zql_val_append_bson(&b, key, klen, &r[i])) {
      bson_destroy(&b);
      return zql_val_error(spec ? "document too large" : "array too large");
    }
  }
  return into_batch(vm, &b, spec == NULL);
}

/* One step of a path over a computed value. */
static zql_val_t step1(const zql_val_t *v, const zql_step_t *s)
{
  bson_iter_t it;
  if (s->kind == ZQL_STEP_FIELD) {
    if (v->t != ZQL_V_DOC)
      return zql_val_missing();
    if (!bson_iter_init_from_data(&it, v->u.p, v->len) ||
        !bson_iter_find_w_len(&it, s->name, (int)strlen(s->name)))
      return zql_val_missing();
    zql_val_t r;
    zql_val_from_iter(&it, &r);
    return r;
  }
  /* INDEX: the i-th element (negative from the end) */
  if (v->t != ZQL_V_ARRAY || !bson_iter_init_from_data(&it, v->u.p, v->len))
    return zql_val_missing();
  int64_t idx = s->index;
  if (idx < 0) {
    int64_t n = 0;
    bson_iter_t c = it;
    while (bson_iter_next(&c))
      n++;
    idx += n;
    if (idx < 0)
      return zql_val_missing();
  }
  for (int64_t i = 0; bson_iter_next(&it); i++)
    if (i == idx) {
      zql_val_t r;
      zql_val_from_iter(&it, &r);
      return r;
    }
  return zql_val_missing();
}

static zql_val_t steps(zql_vm_t *vm, zql_val_t v, const zql_step_t *st, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++) {
    if (v.t == ZQL_V_ERROR)
      return v;
    if (st[i].kind != ZQL_STEP_ALL) {
      v = step1(&v, &st[i]);
      if (v.t == ZQL_V_MISSING)
        return v;
      continue;
    }
    /* a[*].rest: the array of rest over each element, MISSING results dropped (R2) */
    if (v.t != ZQL_V_ARRAY)
      return zql_val_missing();
    bson_iter_t it;
    if (!bson_iter_init_from_data(&it, v.u.p, v.len))
      return zql_val_missing();
    bson_t b = BSON_INITIALIZER;
    uint32_t k = 0;
    while (bson_iter_next(&it)) {
      zql_val_t e;
      zql_val_from_iter(&it, &e);
      e = steps(vm, e, st + i + 1, n - i - 1);
      if (e.t == ZQL_V_MISSING)
        continue;
      char kb[16];
      const char *key;
      bson_uint32_to_string(k++, &key, kb, sizeof kb);
      if (!zql_val_append_bson(&b, key, -1, &e)) {
        bson_destroy(&b);
        return zql_val_error("array too large");
      }
    }
    return into_batch(vm, &b, true);
  }
  return v;
}

static zql_val_t in_set(const zql_val_t *a, const zql_val_t *set)
{
  if (a->t == ZQL_V_ERROR)
    return *a;
  if (set->t == ZQL_V_ERROR)
    return *set;
  if (zql_val_is_nullish(a))
    return zql_val_null();
  if (set->t != ZQL_V_ARRAY)
    return zql_val_null(); /* not an array: unknown, like a comparison across types (R3) */
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, set->u.p, set->len))
    return zql_val_error("in: invalid array");
  while (bson_iter_next(&it)) {
    zql_val_t e;
    zql_val_from_iter(&it, &e);
    if (zql_val_eq3(a, &e) == 1)
      return zql_val_bool(true);
  }
  return zql_val_bool(false);
}

static bool encode_key(zql_vm_t *vm, const zql_val_t *r, uint32_t n)
{
  zql_strbuf_reset(&vm->key);
  for (uint32_t i = 0; i < n; i++)
    zql_val_encode(&vm->key, &r[i]);
  if (vm->key.oom) {
    vm->oom = ZQL_E_NOMEM;
    return false;
  }
  return true;
}

static zql_group_t *group_of(zql_vm_t *vm, uint32_t table, const zql_val_t *r, uint32_t n)
{
  if (!encode_key(vm, r, n))
    return NULL;
  uint64_t h = zql_hash_bytes(vm->key.buf, vm->key.len);
  bool created;
  zql_group_t *g = zql_hashagg_get(&vm->tables[table], (const uint8_t *)vm->key.buf,
                                   (uint32_t)vm->key.len, h, &created);
  if (!g)
    vm->oom = ZQL_E_NOMEM;
  return g;
}

static void add_to(zql_vm_t *vm, uint32_t table, zql_group_t *g, uint32_t slot,
                   const zql_val_t *in, uint32_t nin, bool weight_only)
{
  const zql_aggslots_t *s = &vm->x->slots[table];
  const zql_pagg_t *pa = &vm->x->plan->tables[table].aggs[slot];
  zql_aggin_t ai;
  memset(&ai, 0, sizeof ai);
  ai.x = in[0];
  ai.seq = vm->seq;
  uint32_t at = 1;
  ai.weight = zql_val_int(1); /* no weight clause: every row weighs 1 */
  if (weight_only) {
    ai.weight = in[1];
  } else {
    if (pa->has_by && at < nin)
      ai.by = in[at++];
    if (pa->has_weight && at < nin)
      ai.weight = in[at++];
  }
  bool conds[64];
  if (pa->nconds) {
    uint32_t nc = pa->nconds < 64 ? pa->nconds : 64;
    for (uint32_t i = 0; i < nc && at + i < nin; i++)
      conds[i] = truthy(&in[at + i]);
    ai.conds = conds;
  }
  uint64_t skips = vm->actx.type_skips;
  int rc = s->defs[slot]->add(g->states + s->offset[slot], &ai, &vm->actx);
  if (rc < 0)
    vm->oom = rc;
  /* a shared sketch skips a value once for every call that reads it (as unshared would) */
  vm->actx.type_skips += (vm->actx.type_skips - skips) * s->naliases[slot];
}

int zql_vm_exec(zql_vm_t *vm, const zql_prog_t *prog, zql_val_t *r, uint32_t table)
{
  const zql_xplan_t *x = vm->x;
  const zql_plan_t *p = x->plan;
  const zql_insn_t *code = prog->code;
  uint32_t pc = 0;
  if (prog == &p->map || prog == &p->pre) {
    for (uint32_t i = 0; i < x->niter_regs; i++)
      vm->iters[x->iter_regs[i]].state = 2;
    for (uint32_t i = 0; i < p->ntables; i++)
      vm->cur[i] = NULL; /* no group of an earlier event (a spill may have freed it) */
  }
  for (;;) {
    const zql_insn_t *in = &code[pc++];
    switch ((zql_opcode_t)in->op) {
    case ZQL_I_LOADK: r[in->dst] = x->consts[in->c]; break;
    case ZQL_I_MOVE: r[in->dst] = r[in->a]; break;
    case ZQL_I_MISSING: r[in->dst] = zql_val_missing(); break;
    case ZQL_I_STEPS: {
      const zql_psteps_t *s = &p->steps[in->c];
      r[in->dst] = steps(vm, r[in->a], s->steps, s->n);
      break;
    }
    case ZQL_I_NEG:
    case ZQL_I_PLUS: {
      const zql_val_t *a = &r[in->a];
      if (a->t == ZQL_V_ERROR || zql_val_is_nullish(a))
        r[in->dst] = *a; /* ERROR, MISSING and NULL stay what they are */
      else if (!zql_val_is_num(a))
        r[in->dst] = zql_val_error(in->op == ZQL_I_NEG ? "-: operand is not a number"
                                                        : "+: operand is not a number");
      else if (in->op == ZQL_I_PLUS)
        r[in->dst] = *a;
      else if (a->t == ZQL_V_INT && a->u.i != INT64_MIN)
        r[in->dst] = zql_val_int(-a->u.i);
      else if (a->t == ZQL_V_INT) {
        vm->overflow++;
        r[in->dst] = zql_val_double(-(double)a->u.i);
      } else
        r[in->dst] = zql_val_double(-a->u.d);
      break;
    }
    case ZQL_I_NOT: {
      const zql_val_t *a = &r[in->a];
      if (a->t == ZQL_V_ERROR)
        r[in->dst] = *a;
      else if (a->t == ZQL_V_BOOL)
        r[in->dst] = zql_val_bool(!a->u.b);
      else if (zql_val_is_nullish(a))
        r[in->dst] = zql_val_null();
      else
        r[in->dst] = zql_val_error("not: operand is not a boolean");
      break;
    }
    case ZQL_I_ADD:
    case ZQL_I_SUB:
    case ZQL_I_MUL: r[in->dst] = arith(vm, (zql_opcode_t)in->op, &r[in->a], &r[in->b]); break;
    case ZQL_I_DIV:
    case ZQL_I_MOD: r[in->dst] = divmod((zql_opcode_t)in->op, &r[in->a], &r[in->b]); break;
    case ZQL_I_EQ: case ZQL_I_NE: case ZQL_I_LT: case ZQL_I_LE: case ZQL_I_GT:
    case ZQL_I_GE:
      r[in->dst] = compare((zql_opcode_t)in->op, &r[in->a], &r[in->b]);
      break;
    case ZQL_I_MATCH: {
      zql_val_t v = zql_regex_match_val(x->regex[in->c], &r[in->a]);
      if ((in->flags & 1) && v.t == ZQL_V_BOOL)
        v.u.b = !v.u.b;
      r[in->dst] = v;
      break;
    }
    case ZQL_I_AND:
    case ZQL_I_OR: r[in->dst] = logic((zql_opcode_t)in->op, &r[in->a], &r[in->b]); break;
    case ZQL_I_COALESCE:
      r[in->dst] = zql_val_is_nullish(&r[in->a]) ? r[in->b] : r[in->a];
      break;
    case ZQL_I_IS: {
      const zql_val_t *a = &r[in->a];
      bool v = (in->flags & 1) ? a->t == ZQL_V_MISSING
                               : (a->t == ZQL_V_MISSING || a->t == ZQL_V_NULL);
      if (a->t == ZQL_V_ERROR) {
        r[in->dst] = *a;
        break;
      }
      r[in->dst] = zql_val_bool((in->flags & 2) ? !v : v);
      break;
    }
    case ZQL_I_IN: {
      zql_val_t v = in_set(&r[in->a], &r[in->b]);
      if ((in->flags & 2) && v.t == ZQL_V_BOOL)
        v.u.b = !v.u.b;
      r[in->dst] = v;
      break;
    }
    case ZQL_I_DEF:
      r[in->dst] = zql_val_bool(r[in->a].t != ZQL_V_ERROR && r[in->a].t != ZQL_V_MISSING);
      break;
    case ZQL_I_IF: r[in->dst] = truthy(&r[in->a]) ? r[in->b] : r[in->c]; break;
    case ZQL_I_CALL: {
      zql_val_t out = zql_val_null();
      x->fns[in->c]->call(&vm->fn, x->aux[in->c], &r[in->a], in->b, &out);
      r[in->dst] = out;
      break;
    }
    case ZQL_I_BUCKET: {
      const zql_val_t *a = &r[in->a];
      int64_t ms, start;
      if (a->t == ZQL_V_ERROR)
        r[in->dst] = *a;
      else if (zql_val_is_nullish(a))
        r[in->dst] = zql_val_null();
      else if (!zql_time_of(a, &ms))
        r[in->dst] = zql_val_error("bucket: not a time value");
      else if (vm->bcache && ms >= vm->bcache[2 * in->c] && ms < vm->bcache[2 * in->c + 1])
        r[in->dst] = zql_val_date(vm->bcache[2 * in->c]);
      else {
        int64_t end;
        if (zql_bucket_range(&x->buckets[in->c], ms, &start, &end) != 0) {
          r[in->dst] = zql_val_error("bucket: time out of range");
        } else {
          r[in->dst] = zql_val_date(start);
          if (vm->bcache) {
            vm->bcache[2 * in->c] = start;
            vm->bcache[2 * in->c + 1] = end;
          }
        }
      }
      break;
    }
    case ZQL_I_ARRAY: r[in->dst] = build_container(vm, &r[in->a], in->b, NULL); break;
    case ZQL_I_DOC:
      r[in->dst] = build_container(vm, &r[in->a], in->b, &p->docs[in->c]);
      break;
    case ZQL_I_JMP: pc = in->c; break;
    case ZQL_I_JNT:
      if (!truthy(&r[in->a]))
        pc = in->c;
      break;
    case ZQL_I_JNULL:
      if (r[in->a].t == ZQL_V_NULL || r[in->a].t == ZQL_V_MISSING)
        pc = in->c;
      break;
    case ZQL_I_CHKERR:
      if (r[in->a].t == ZQL_V_ERROR) {
        zql_errtab_add(&vm->errs, r[in->a].u.err, 1);
        pc = in->c;
      }
      break;
    case ZQL_I_ITER: {
      zql_iter_t *it = &vm->iters[in->dst];
      const zql_val_t *a = &r[in->a];
      bool keep = in->flags & 1;
      if (a->t == ZQL_V_ARRAY && bson_iter_init_from_data(&it->it, a->u.p, a->len)) {
        bson_iter_t probe = it->it;
        if (bson_iter_next(&probe)) {
          it->state = 0;
          break;
        }
      }
      if (keep) {
        it->state = 1; /* one row with the alias MISSING */
        break;
      }
      pc = in->c;
      break;
    }
    case ZQL_I_NEXT: {
      zql_iter_t *it = &vm->iters[in->a];
      if (it->state == 1) {
        it->state = 2;
        r[in->dst] = zql_val_missing();
        break;
      }
      if (it->state == 0 && bson_iter_next(&it->it)) {
        zql_val_from_iter(&it->it, &r[in->dst]);
        break;
      }
      it->state = 2;
      pc = in->c;
      break;
    }
    case ZQL_I_GROUP: {
      vm->rows++;
      zql_group_t *g = group_of(vm, in->c, &r[in->a], in->b);
      if (!g)
        return vm->oom;
      vm->cur[in->c] = g;
      break;
    }
    case ZQL_I_ADDAGG:
      if (!vm->cur[in->dst])
        break; /* no GROUP before it (a compiled plan always has one) */
      add_to(vm, in->dst, vm->cur[in->dst], in->c, &r[in->a], in->b, false);
      if (vm->oom)
        return vm->oom;
      break;
    case ZQL_I_EMIT: {
      zql_group_t *g = group_of(vm, in->c, &r[in->a], in->b);
      if (!g)
        return vm->oom;
      const zql_val_t *v = &r[in->a + in->b];
      add_to(vm, in->c, g, 0, v, 2, (in->flags & 1) != 0);
      if (vm->oom)
        return vm->oom;
      break;
    }
    case ZQL_I_FINAL: {
      const zql_aggslots_t *s = &x->slots[table];
      zql_val_t out = zql_val_null();
      int rc = s->defs[in->c]->final(vm->fgroup->states + s->offset[in->c],
                                     &s->params[in->c], vm->batch, &out);
      if (rc < 0)
        return rc;
      r[in->dst] = out;
      break;
    }
    case ZQL_I_KEY: r[in->dst] = vm->fkeys[in->c]; break;
    case ZQL_I_SESSION: {
      /* the last session start of entity a that is <= the time b */
      const zql_val_t *tv = &r[in->b];
      int64_t ms;
      const zql_sessidx_t *ix = vm->sess ? vm->sess[in->c] : NULL;
      if (r[in->a].t == ZQL_V_ERROR || tv->t == ZQL_V_ERROR) {
        r[in->dst] = r[in->a].t == ZQL_V_ERROR ? r[in->a] : *tv;
        break;
      }
      if (zql_val_is_nullish(tv)) {
        r[in->dst] = zql_val_null();
        break;
      }
      if (!zql_time_of(tv, &ms)) {
        r[in->dst] = zql_val_error("session: not a time value");
        break;
      }
      if (!encode_key(vm, &r[in->a], 1))
        return vm->oom;
      r[in->dst] = zql_val_error("session: the entity has no sessions");
      if (!ix || !ix->cap)
        break;
      uint64_t h = zql_hash_bytes(vm->key.buf, vm->key.len);
      for (uint64_t i = h & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        const struct zql_sslot *sl = &ix->tab[i];
        if (!sl->key)
          break;
        if (sl->hash != h || sl->klen != vm->key.len ||
            (sl->klen && memcmp(sl->key, vm->key.buf, sl->klen) != 0))
          continue;
        uint32_t lo = 0, hi = sl->n; /* the first start > ms */
        while (lo < hi) {
          uint32_t mid = lo + (hi - lo) / 2;
          if (sl->starts[mid] <= ms)
            lo = mid + 1;
          else
            hi = mid;
        }
        if (lo > 0)
          r[in->dst] = zql_val_date(sl->starts[lo - 1]);
        break;
      }
      break;
    }
    case ZQL_I_ROW: {
      vm->rows++;
      int rc = vm->row_fn(vm, &r[in->a], in->b);
      if (rc)
        return rc;
      break;
    }
    case ZQL_I_HALT: return 0;
    default: ZQL_BUG("vm: opcode %u", (unsigned)in->op);
    }
  }
}

/* }==== */
