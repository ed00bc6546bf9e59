/*
 * agg_user.c -- user reducers as aggregators (stage 4, MAP and REDUCE).
 *
 * Pipeline position: a `reducer NAME(x: T) state {...} { init; add; merge; final }`
 * definition is compiled by the planner into four small programs (planner/plan.h,
 * zql_preducer_t); a slot whose function is "reducer" runs them through the VM: the state
 * is a value (normally a document such as {lo, hi, n}), `init` makes the first one, `add`
 * computes the next from s and x, `merge` combines a and b (partial states of different
 * workers, chunks and spill runs), `final` turns s into the output value.
 *
 * Each call evaluates its program in a scratch VM on the calling thread: registers on the
 * stack (or the heap for large programs), values in a thread-local arena reset after the
 * call. The resulting state is copied to the heap (counted in ctx->heap). An ERROR state or
 * result is kept as is: the cell becomes ERROR. NULL and MISSING inputs are skipped, like
 * the built-in aggregators' (R8).
 *
 * A reducer without `merge` cannot combine partial states, so exec/run.c runs plans that
 * use one on a single worker without spilling (design/ZQL.md R14 marks them
 * non-mergeable); merge is then never called.
 *
 * Saved form: {k: "reducer", v: 1, p: {name}, s: {v: <the state value>}} (absent s: no
 * input yet).
 */
#include "runtime/base/zql_common.h"

#include <pthread.h>

#include "exec/agg.h"
#include "exec/exec_int.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

typedef struct ustate {
  const zql_ureducer_t *u;
  uint8_t *bytes;   /* the state value's BSON: a document {v: value} (heap) */
  uint32_t len;
} ustate_t;

static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_free(void *a)
{
  zql_arena_delete(a);
}

static void arena_key_init(void)
{
  pthread_key_create(&arena_key, arena_free);
}

static zql_arena_t *scratch(void)
{
  pthread_once(&arena_once, arena_key_init);
  zql_arena_t *a = pthread_getspecific(arena_key);
  if (!a && (a = zql_arena_create(NULL)) != NULL && pthread_setspecific(arena_key, a) != 0) {
    zql_arena_delete(a);
    a = NULL;
  }
  return a;
}

/* Run part (init/add/merge/final) with locals l1, l2; the result in *out (its bytes in
 * the scratch arena). 0 or ZQL_E_NOMEM. */
static int eval(const zql_ureducer_t *u, const zql_prog_t *prog, const zql_val_t *l1,
                const zql_val_t *l2, zql_val_t *out)
{
  zql_arena_t *a = scratch();
  if (!a)
    return ZQL_E_NOMEM;
  zql_val_t stack[64], *regs = prog->nregs <= 64 ? stack : zql_calloc(prog->nregs, sizeof *regs);
  if (!regs)
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < prog->nregs; i++)
    regs[i] = zql_val_missing();
  if (l1)
    regs[1] = *l1;
  if (l2)
    regs[2] = *l2;
  zql_vm_t vm;
  memset(&vm, 0, sizeof vm);
  vm.x = u->x;
  vm.batch = a;
  vm.fn.arena = a;
  vm.fn.now_ms = u->x->now_ms;
  int rc = zql_vm_exec(&vm, prog, regs, 0);
  *out = regs[0];
  zql_free(vm.errs.v);
  if (regs != stack)
    zql_free(regs);
  return rc ? rc : vm.oom;
}

/* Replace the state by v (wrapped as {v: value}, copied to the heap). */
static int set_state(ustate_t *s, const zql_val_t *v, zql_aggctx_t *ctx)
{
  bson_t d = BSON_INITIALIZER;
  zql_val_t nul = zql_val_null();
  if (!zql_val_append_bson(&d, "v", 1, v->t == ZQL_V_MISSING ? &nul : v)) {
    bson_destroy(&d);
    return ZQL_E_NOMEM;
  }
  uint8_t *m = zql_malloc(d.len);
  if (!m) {
    bson_destroy(&d);
    return ZQL_E_NOMEM;
  }
  memcpy(m, bson_get_data(&d), d.len);
  if (s->bytes) {
    zql_free(s->bytes);
    ctx->heap -= s->len;
  }
  s->bytes = m;
  s->len = d.len;
  ctx->heap += d.len;
  bson_destroy(&d);
  return 0;
}

/* The state value (a view of s->bytes). */
static zql_val_t get_state(const ustate_t *s)
{
  bson_iter_t it;
  zql_val_t v = zql_val_null();
  if (s->bytes && bson_iter_init_from_data(&it, s->bytes, s->len) && bson_iter_next(&it))
    zql_val_from_iter(&it, &v);
  return v;
}

static void u_init(void *st, const zql_aggparams_t *p)
{
  ustate_t *s = st;
  memset(s, 0, sizeof *s);
  s->u = p->user;
}

static int ensure_init(ustate_t *s, zql_aggctx_t *ctx)
{
  if (s->bytes)
    return 0;
  zql_val_t v;
  int rc = eval(s->u, &s->u->r->init, NULL, NULL, &v);
  if (!rc)
    rc = set_state(s, &v, ctx);
  zql_arena_reset(scratch());
  return rc;
}

static int u_add(void *st, const zql_aggin_t *in, zql_aggctx_t *ctx)
{
  ustate_t *s = st;
  if (!s->u || zql_val_is_nullish(&in->x))
    return 0;
  int rc = ensure_init(s, ctx);
  if (rc)
    return rc;
  zql_val_t cur = get_state(s), v;
  rc = eval(s->u, &s->u->r->add, &cur, &in->x, &v);
  if (!rc)
    rc = set_state(s, &v, ctx);
  zql_arena_reset(scratch());
  return rc;
}

static int u_merge(void *dst, const void *src, zql_aggctx_t *ctx)
{
  ustate_t *a = dst;
  const ustate_t *b = src;
  if (!b->bytes)
    return 0;
  if (!a->u)
    a->u = b->u;
  if (!a->bytes) { /* nothing yet: take b's state */
    zql_val_t v = get_state(b);
    return set_state(a, &v, ctx);
  }
  if (!a->u || !a->u->r->has_merge)
    return ZQL_AGG_MISMATCH; /* run.c never merges a reducer without merge */
  zql_val_t x = get_state(a), y = get_state(b), v;
  int rc = eval(a->u, &a->u->r->merge, &x, &y, &v);
  if (!rc)
    rc = set_state(a, &v, ctx);
  zql_arena_reset(scratch());
  return rc;
}

static int u_final(const void *st, const zql_aggparams_t *p, zql_arena_t *arena,
                   zql_val_t *out)
{
  const ustate_t *s = st;
  const zql_ureducer_t *u = s->u ? s->u : p->user;
  if (!u) {
    *out = zql_val_error("reducer: no definition");
    return 0;
  }
  zql_val_t cur, v;
  int rc;
  if (s->bytes) {
    cur = get_state(s);
  } else { /* no input: final(init) */
    rc = eval(u, &u->r->init, NULL, NULL, &cur);
    if (rc)
      return rc;
  }
  rc = eval(u, &u->r->final, &cur, NULL, &v);
  if (!rc && !zql_val_copy(arena, &v, out))
    rc = ZQL_E_NOMEM;
  zql_arena_reset(scratch());
  return rc;
}

static int u_save(const void *st, bson_t *out)
{
  const ustate_t *s = st;
  bson_t pd;
  if (!bson_append_utf8(out, "k", 1, "reducer", -1) || !bson_append_int32(out, "v", 1, 1) ||
      !bson_append_document_begin(out, "p", 1, &pd))
    return ZQL_E_NOMEM;
  if (s->u)
    bson_append_utf8(&pd, "name", 4, s->u->r->name, -1);
  bson_append_document_end(out, &pd);
  if (s->bytes) {
    bson_t sd;
    if (!bson_init_static(&sd, s->bytes, s->len) || !bson_append_document(out, "s", 1, &sd))
      return ZQL_E_NOMEM;
  }
  return 0;
}

static int u_load(void *st, const bson_t *in, zql_aggctx_t *ctx, zql_strbuf_t *err)
{
  ustate_t *s = st;
  const zql_ureducer_t *u = s->u; /* init ran first when the slot is known */
  memset(s, 0, sizeof *s);
  s->u = u;
  bson_iter_t it;
  if (!bson_iter_init_find(&it, in, "k") || !BSON_ITER_HOLDS_UTF8(&it) ||
      strcmp(bson_iter_utf8(&it, NULL), "reducer") != 0) {
    zql_strbuf_adds(err, "not a reducer state");
    return ZQL_E_BAD_RECORD;
  }
  if (bson_iter_init_find(&it, in, "s")) {
    const uint8_t *d;
    uint32_t dl;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
      zql_strbuf_adds(err, "invalid reducer state");
      return ZQL_E_BAD_RECORD;
    }
    bson_iter_document(&it, &dl, &d);
    s->bytes = zql_malloc(dl);
    if (!s->bytes)
      return ZQL_E_NOMEM;
    memcpy(s->bytes, d, dl);
    s->len = dl;
    ctx->heap += dl;
  }
  return 0;
}

static void u_destroy(void *st, zql_aggctx_t *ctx)
{
  ustate_t *s = st;
  if (s->bytes) {
    zql_free(s->bytes);
    ctx->heap -= s->len;
  }
  s->bytes = NULL;
  s->len = 0;
}

const zql_aggdef_t zql_agg_reducer = {
    "reducer", 1, sizeof(ustate_t), 0, u_init, u_add, u_merge, u_final, u_save, u_load,
    u_destroy,
};
