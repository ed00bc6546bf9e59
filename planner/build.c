/*
 * build.c -- checked AST -> plan: logical operators, pushdown, bytecode (stage 3).
 *
 * Pipeline position: parser/analyze.c (checked AST) -> here -> planner/explain.c (text),
 * planner/plan_bson.c (.zqlc), exec/ (runs the programs).
 *
 * What it does, for one ZQL_N_AGGREGATE or ZQL_N_QUERY:
 *   1. Logical plan: Scan -> Filter / Let / Unwind (row ops, in order) -> Key -> Agg ->
 *      Having -> Rank | Order -> Limit, kept as EXPLAIN lines (zql_plnode_t) whose
 *      arguments are the source text of each clause.
 *   2. Rewrites: constant folding (parameters become constants; unary minus, arithmetic
 *      and comparisons over numeric literals fold; `true and x` is x), predicate pushdown
 *      (top-level `where` conjuncts comparing `timestamp` with a constant date or now()
 *      +- a duration, and `_seq` with an integer, become scan bounds that prune segments;
 *      the filter itself stays in the program, so pruning is only ever an optimisation),
 *      projection pushdown (the event paths the statement reads are the only ones
 *      extracted: plan->extract).
 *   3. Code generation: a register bytecode program (planner/oplist.h) for the map side,
 *      run once per event, and per table a final program run once per group.
 *
 * Code generation rules (design/ZQL.md R1-R6):
 *   - Every `where` is `CHKERR r -> skip; JNT r -> skip`: an ERROR is counted in _errors,
 *     NULL/FALSE just drop the row. A `let` or a key that is ERROR skips the row (R5).
 *   - `skip` is the innermost unwind's NEXT (a skipped row moves to the next element) or
 *     the end of the program.
 *   - Keys go to consecutive registers, then GROUP; `skip null` keys jump with JNULL.
 *   - Each aggregator call of a compute item is one slot; its filter (`where` of the
 *     item) and inputs (x, by, weight, conditions in consecutive registers) are computed
 *     before ADDAGG; an ERROR input skips that slot only.
 *   - The final program loads keys (KEY) and finals (FINAL) and evaluates each computed
 *     item as an expression over them (so `r = sum(x) / count()` works), then having,
 *     rank and order-by values.
 *
 * Memory: everything goes into the plan's arena; the AST is only read.
 */
#include "runtime/base/zql_common.h"

#include <math.h>
#include <setjmp.h>

#include "parser/ast.h"
#include "parser/registry.h"
#include "parser/zql_parse.h"
#include "planner/plan.h"
#include "planner/zql_plan.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"

#include <xxhash.h>

/* {==== builder state =================================================================== */

typedef struct bind {
  const zql_node_t *node; /* LET / UNWIND / KEY / AGGITEM / FOR var owner / agg CALL /
                             REDUCER (with name: its locals s, x, a, b) */
  uint16_t reg;
  int slot;               /* agg CALL: the slot; others -1 */
  const char *name;       /* reducer locals */
} bind_t;

typedef struct patch {
  uint32_t at;            /* instruction whose c is a jump target to fill */
} patch_t;

typedef struct builder {
  zql_plan_t *p;
  zql_arena_t *a;
  const zql_source_t *src;
  zql_prog_t *prog;       /* the program being emitted */
  bind_t *binds;
  uint32_t nbinds, capbinds;
  int err;                /* first error (ZQL_E_*) */
  zql_strbuf_t *msg;
  bool final_mode;        /* compiling a final program: aggregator calls are FINAL */
  uint32_t table;         /* table being compiled */
  uint32_t *skip_patch;   /* pending jumps to the current skip target */
  uint32_t nskip, capskip;
  uint32_t skip_target;   /* UINT32_MAX: end of program (patched at the end) */
  const zql_node_t *forced_for; /* map-form for variable owner while compiling */
  zql_prog_t *regs;       /* whose register counter newreg uses (NULL: prog's) */
  bool incremental;       /* zql_plan_opts_t.incremental */
} builder_t;

static void fail(builder_t *b, int code, const char *fmt, ...) ZQL_PRINTF(3, 4);
static void fail(builder_t *b, int code, const char *fmt, ...)
{
  if (b->err)
    return;
  b->err = code;
  if (b->msg && fmt) {
    va_list ap;
    va_start(ap, fmt);
    zql_strbuf_vaddf(b->msg, fmt, ap);
    va_end(ap);
  }
}

static void *balloc(builder_t *b, size_t n)
{
  void *m = zql_arena_calloc(b->a, 1, n ? n : 1);
  if (!m)
    fail(b, ZQL_E_NOMEM, "out of memory while planning");
  return m;
}

static const char *bstrdup(builder_t *b, const char *s)
{
  if (!s)
    return NULL;
  char *d = zql_arena_strdup(b->a, s);
  if (!d)
    fail(b, ZQL_E_NOMEM, "out of memory while planning");
  return d;
}

/* Source text of a span, whitespace runs collapsed to one space (EXPLAIN arguments). */
static const char *span_text(builder_t *b, zql_span_t sp)
{
  if (!b->src || sp.end <= sp.start || sp.end > b->src->len)
    return "";
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  bool space = false;
  for (uint32_t i = sp.start; i < sp.end; i++) {
    char c = b->src->text[i];
    if (c == '#' || (c == '-' && i + 1 < sp.end && b->src->text[i + 1] == '-')) {
      /* a comment inside the span: skip to the end of the line */
      while (i < sp.end && b->src->text[i] != '\n')
        i++;
      space = true;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && sb.len)
      zql_strbuf_addc(&sb, ' ');
    space = false;
    zql_strbuf_addc(&sb, c);
  }
  const char *r = zql_arena_strndup(b->a, sb.buf, sb.len);
  zql_strbuf_release(&sb);
  if (!r)
    fail(b, ZQL_E_NOMEM, "out of memory while planning");
  return r ? r : "";
}

typedef enum { K_NONE, K_NULL, K_BOOL, K_INT, K_DOUBLE, K_STR, K_DATE, K_MISSING } kkind_t;
typedef struct kval {
  kkind_t k;
  bool b;
  int64_t i; /* INT, DATE, and durations (INT ms) */
  double d;
  const char *s;
  uint32_t len;
} kval_t;

static bool fold(builder_t *b, const zql_node_t *n, kval_t *out);
static void unparse(builder_t *b, zql_strbuf_t *sb, const zql_node_t *n, int prec);

/* EXPLAIN text of a node: an expression is printed from the tree after constant folding
 * (so `$p * 2` shows its value), anything else as its source text. */
static const char *node_text(builder_t *b, const zql_node_t *n)
{
  if (!n)
    return "";
  if (n->kind < ZQL_N_INT || n->kind > ZQL_N_DOCFIELD)
    return span_text(b, n->span);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  unparse(b, &sb, n, 0);
  const char *r = sb.oom ? NULL : zql_arena_strndup(b->a, sb.buf, sb.len);
  zql_strbuf_release(&sb);
  if (!r)
    fail(b, ZQL_E_NOMEM, "out of memory while planning");
  return r ? r : "";
}

/* }==== */

/* {==== emitting ======================================================================== */

static uint16_t newreg(builder_t *b, uint16_t n)
{
  zql_prog_t *f = b->regs ? b->regs : b->prog;
  uint32_t r = f->nregs;
  if (r + n > 60000) {
    fail(b, ZQL_E_UNSUPPORTED, "statement too large (more than 60000 registers)");
    return 0;
  }
  f->nregs = (uint16_t)(r + n);
  return (uint16_t)r;
}

/* The program being compiled reads events (the map program or the session pre-pass). */
static bool event_side(const builder_t *b)
{
  return b->prog == &b->p->map || b->prog == &b->p->pre;
}

static uint32_t emit(builder_t *b, zql_opcode_t op, unsigned flags, unsigned dst, unsigned a,
                     unsigned bb, uint32_t c)
{
  zql_prog_t *pr = b->prog;
  if (pr->n == pr->cap) {
    uint32_t cap = pr->cap ? pr->cap * 2 : 64;
    zql_insn_t *code = zql_arena_alloc(b->a, cap * sizeof *code);
    if (!code) {
      fail(b, ZQL_E_NOMEM, "out of memory while planning");
      return 0;
    }
    if (pr->n)
      memcpy(code, pr->code, pr->n * sizeof *code);
    pr->code = code;
    pr->cap = cap;
  }
  zql_insn_t *i = &pr->code[pr->n];
  i->op = (uint8_t)op;
  i->flags = (uint8_t)flags;
  i->dst = (uint16_t)dst;
  i->a = (uint16_t)a;
  i->b = (uint16_t)bb;
  i->c = c;
  return pr->n++;
}

static uint32_t here(builder_t *b) { return b->prog->n; }

static void patch_to(builder_t *b, uint32_t at, uint32_t target)
{
  if (!b->err)
    b->prog->code[at].c = target;
}

/* Record a jump to the current skip target (filled when the target is known). */
static void skip_jump(builder_t *b, zql_opcode_t op, unsigned a)
{
  uint32_t at = emit(b, op, 0, 0, a, 0, 0);
  if (b->skip_target != UINT32_MAX) {
    patch_to(b, at, b->skip_target);
    return;
  }
  if (b->nskip == b->capskip) {
    uint32_t cap = b->capskip ? b->capskip * 2 : 32;
    uint32_t *v = zql_arena_alloc(b->a, cap * sizeof *v);
    if (!v) {
      fail(b, ZQL_E_NOMEM, "out of memory while planning");
      return;
    }
    if (b->nskip)
      memcpy(v, b->skip_patch, b->nskip * sizeof *v);
    b->skip_patch = v;
    b->capskip = cap;
  }
  b->skip_patch[b->nskip++] = at;
}

static void bind(builder_t *b, const zql_node_t *n, uint16_t reg, int slot)
{
  if (b->nbinds == b->capbinds) {
    uint32_t cap = b->capbinds ? b->capbinds * 2 : 32;
    bind_t *v = zql_arena_alloc(b->a, cap * sizeof *v);
    if (!v) {
      fail(b, ZQL_E_NOMEM, "out of memory while planning");
      return;
    }
    if (b->nbinds)
      memcpy(v, b->binds, b->nbinds * sizeof *v);
    b->binds = v;
    b->capbinds = cap;
  }
  b->binds[b->nbinds++] = (bind_t){n, reg, slot, NULL};
}

static const bind_t *lookup(const builder_t *b, const zql_node_t *n)
{
  for (uint32_t i = b->nbinds; i-- > 0;)
    if (b->binds[i].node == n && !b->binds[i].name)
      return &b->binds[i];
  return NULL;
}

/* A reducer's local (s, x, a, b) in the part being compiled. */
static const bind_t *lookup_local(const builder_t *b, const zql_node_t *n, const char *name)
{
  for (uint32_t i = b->nbinds; i-- > 0;)
    if (b->binds[i].node == n && b->binds[i].name && strcmp(b->binds[i].name, name) == 0)
      return &b->binds[i];
  return NULL;
}

/* }==== */

/* {==== constants ======================================================================== */

/* The pool key of the next constant (its index, as text) into buf; returns the index. */
static uint32_t const_key(builder_t *b, char buf[16], const char **key)
{
  uint32_t k = b->p->nconsts++;
  bson_uint32_to_string(k, key, buf, 16);
  return k;
}

/* The index of the constant just appended, or a failure when libbson refused it. */
static uint32_t const_done(builder_t *b, uint32_t k, bool appended)
{
  if (!appended)
    fail(b, ZQL_E_UNSUPPORTED, "too many constants");
  return k;
}

#define CONST_ADD(b, APPEND, ...)                                                        \
  char kbuf_[16];                                                                        \
  const char *key_;                                                                      \
  uint32_t k_ = const_key((b), kbuf_, &key_);                                            \
  return const_done((b), k_, APPEND((b)->p->consts, key_, -1, __VA_ARGS__))

static uint32_t const_int(builder_t *b, int64_t v) { CONST_ADD(b, bson_append_int64, v); }
static uint32_t const_double(builder_t *b, double v) { CONST_ADD(b, bson_append_double, v); }
static uint32_t const_bool(builder_t *b, bool v) { CONST_ADD(b, bson_append_bool, v); }
static uint32_t const_date(builder_t *b, int64_t ms) { CONST_ADD(b, bson_append_date_time, ms); }
static uint32_t const_str(builder_t *b, const char *s, uint32_t len)
{
  CONST_ADD(b, bson_append_utf8, s, (int)len);
}
static uint32_t const_regex(builder_t *b, const char *pattern, const char *flags)
{
  CONST_ADD(b, bson_append_regex, pattern, flags ? flags : "");
}
static uint32_t const_null(builder_t *b)
{
  char kbuf[16];
  const char *key;
  uint32_t k = const_key(b, kbuf, &key);
  return const_done(b, k, bson_append_null(b->p->consts, key, -1));
}
#undef CONST_ADD

/* {==== EXPLAIN text of expressions ====================================================== */

/* Binding strength of an operator (higher binds tighter), as in parser/gram.y. */
static int op_prec(zql_op_t op)
{
  switch (op) {
  case ZQL_OP_OR: return 1;
  case ZQL_OP_AND: return 2;
  case ZQL_OP_NOT: return 3;
  case ZQL_OP_EQ: case ZQL_OP_NE: case ZQL_OP_LT: case ZQL_OP_LE: case ZQL_OP_GT:
  case ZQL_OP_GE: case ZQL_OP_MATCH: case ZQL_OP_NOMATCH: return 4;
  case ZQL_OP_COALESCE: return 5;
  case ZQL_OP_ADD: case ZQL_OP_SUB: return 6;
  case ZQL_OP_MUL: case ZQL_OP_DIV: case ZQL_OP_MOD: return 7;
  default: return 8; /* unary minus and plus */
  }
}

static void duration_text(zql_strbuf_t *sb, int64_t ms)
{
  static const struct { const char *u; int64_t ms; } units[] = {
      {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
  if (ms == 0) {
    zql_strbuf_adds(sb, "0s");
    return;
  }
  uint64_t v = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
  if (ms < 0)
    zql_strbuf_addc(sb, '-');
  for (size_t i = 0; i < ZQL_ARRAY_LEN(units); i++)
    if (v >= (uint64_t)units[i].ms) {
      zql_strbuf_addf(sb, "%" PRIu64 "%s", v / (uint64_t)units[i].ms, units[i].u);
      v %= (uint64_t)units[i].ms;
    }
}

static void kval_text(zql_strbuf_t *sb, const zql_node_t *n, const struct kval *k);

static void list_text(builder_t *b, zql_strbuf_t *sb, const zql_list_t *l)
{
  for (uint32_t i = 0; i < l->n; i++) {
    if (i)
      zql_strbuf_adds(sb, ", ");
    unparse(b, sb, l->items[i], 0);
  }
}

static void path_text(zql_strbuf_t *sb, const zql_node_t *n)
{
  zql_strbuf_adds(sb, n->u.path.root);
  for (uint32_t i = 0; i < n->u.path.nsteps; i++) {
    const zql_step_t *st = &n->u.path.steps[i];
    if (st->kind == ZQL_STEP_FIELD)
      zql_strbuf_addf(sb, ".%s", st->name);
    else if (st->kind == ZQL_STEP_INDEX)
      zql_strbuf_addf(sb, "[%" PRId64 "]", st->index);
    else
      zql_strbuf_adds(sb, "[*]");
  }
}

/* Print n; parenthesized when its operator binds weaker than prec. */
static void unparse(builder_t *b, zql_strbuf_t *sb, const zql_node_t *n, int prec)
{
  struct kval k;
  if (n->kind != ZQL_N_PATH && n->kind != ZQL_N_REGEX && fold(b, n, &k)) {
    kval_text(sb, n, &k);
    return;
  }
  switch (n->kind) {
  case ZQL_N_PATH:
    path_text(sb, n);
    return;
  case ZQL_N_REGEX:
    zql_strbuf_addf(sb, "/%s/%s", n->u.regex.pattern, n->u.regex.flags ? n->u.regex.flags : "");
    return;
  case ZQL_N_PARAMREF:
    zql_strbuf_addf(sb, "$%s", n->u.paramref.name);
    return;
  case ZQL_N_CALL:
    zql_strbuf_addf(sb, "%s(", n->u.call.name);
    for (uint32_t i = 0; i < n->u.call.args.n; i++) {
      const zql_node_t *a = n->u.call.args.items[i];
      if (i)
        zql_strbuf_adds(sb, ", ");
      if (a->kind == ZQL_N_PATH && a->u.path.ref == ZQL_REF_UNRESOLVED)
        zql_strbuf_adds(sb, a->u.path.root); /* a unit name */
      else
        unparse(b, sb, a, 0);
    }
    if (n->u.call.by) {
      zql_strbuf_adds(sb, " by ");
      unparse(b, sb, n->u.call.by, 0);
    }
    if (n->u.call.weight) {
      zql_strbuf_adds(sb, n->u.call.args.n ? " weight " : "weight ");
      unparse(b, sb, n->u.call.weight, 0);
    }
    if (n->u.call.gap) {
      zql_strbuf_adds(sb, ", gap ");
      unparse(b, sb, n->u.call.gap, 0);
    }
    zql_strbuf_addc(sb, ')');
    return;
  case ZQL_N_BUCKET:
    zql_strbuf_adds(sb, "bucket(");
    unparse(b, sb, n->u.bucket.ts, 0);
    zql_strbuf_adds(sb, ", ");
    if (n->u.bucket.every) {
      zql_strbuf_adds(sb, "every ");
      unparse(b, sb, n->u.bucket.every, 0);
      zql_strbuf_addc(sb, ' ');
    }
    zql_strbuf_adds(sb, n->u.bucket.unit);
    if (n->u.bucket.tz) {
      zql_strbuf_adds(sb, " tz ");
      unparse(b, sb, n->u.bucket.tz, 0);
    }
    if (n->u.bucket.week_start)
      zql_strbuf_addf(sb, " week starts %s", n->u.bucket.week_start);
    if (n->u.bucket.origin) {
      zql_strbuf_adds(sb, " origin ");
      unparse(b, sb, n->u.bucket.origin, 0);
    }
    zql_strbuf_addc(sb, ')');
    return;
  case ZQL_N_UNARY: {
    int p = op_prec(n->u.unary.op);
    if (p < prec)
      zql_strbuf_addc(sb, '(');
    zql_strbuf_adds(sb, n->u.unary.op == ZQL_OP_NOT ? "not " : zql_op_name(n->u.unary.op));
    unparse(b, sb, n->u.unary.arg, p);
    if (p < prec)
      zql_strbuf_addc(sb, ')');
    return;
  }
  case ZQL_N_BINARY: {
    zql_op_t op = n->u.binary.op;
    struct kval l;
    /* `true and x` is x (as the code generator does) */
    if ((op == ZQL_OP_AND || op == ZQL_OP_OR) && fold(b, n->u.binary.lhs, &l) &&
        l.k == K_BOOL && l.b == (op == ZQL_OP_AND)) {
      unparse(b, sb, n->u.binary.rhs, prec);
      return;
    }
    int p = op_prec(op);
    if (p < prec)
      zql_strbuf_addc(sb, '(');
    unparse(b, sb, n->u.binary.lhs, p);
    zql_strbuf_addf(sb, " %s ", zql_op_name(op));
    unparse(b, sb, n->u.binary.rhs, p + 1);
    if (p < prec)
      zql_strbuf_addc(sb, ')');
    return;
  }
  case ZQL_N_IS:
    if (prec > 4)
      zql_strbuf_addc(sb, '(');
    unparse(b, sb, n->u.is.arg, 5);
    zql_strbuf_addf(sb, " is %s%s", n->u.is.negated ? "not " : "",
                    n->u.is.missing ? "missing" : "null");
    if (prec > 4)
      zql_strbuf_addc(sb, ')');
    return;
  case ZQL_N_IN:
    if (prec > 4)
      zql_strbuf_addc(sb, '(');
    unparse(b, sb, n->u.in.arg, 5);
    zql_strbuf_adds(sb, n->u.in.negated ? " not in " : " in ");
    unparse(b, sb, n->u.in.set, 0);
    if (prec > 4)
      zql_strbuf_addc(sb, ')');
    return;
  case ZQL_N_ARRAY:
    zql_strbuf_addc(sb, '[');
    list_text(b, sb, &n->u.list);
    zql_strbuf_addc(sb, ']');
    return;
  case ZQL_N_DOC:
    zql_strbuf_addc(sb, '{');
    for (uint32_t i = 0; i < n->u.list.n; i++) {
      const zql_node_t *f = n->u.list.items[i];
      zql_strbuf_addf(sb, "%s%s: ", i ? ", " : "", f->u.docfield.name);
      unparse(b, sb, f->u.docfield.value, 0);
    }
    zql_strbuf_addc(sb, '}');
    return;
  default:
    zql_strbuf_adds(sb, span_text(b, n->span));
    return;
  }
}

/* }==== */

/* A folded constant of the planner (literals, $params, arithmetic over them). */



static bool fold_num(const kval_t *v, double *d)
{
  if (v->k == K_INT) {
    *d = (double)v->i;
    return true;
  }
  if (v->k == K_DOUBLE) {
    *d = v->d;
    return true;
  }
  return false;
}

/* Fold arithmetic and comparisons over numeric constants only; anything else (strings,
 * dates, nulls) is left to the VM so that its semantics live in one place. */
static bool fold_binary(zql_op_t op, const kval_t *l, const kval_t *r, kval_t *out)
{
  double x, y;
  if (!fold_num(l, &x) || !fold_num(r, &y))
    return false;
  bool ints = l->k == K_INT && r->k == K_INT;
  switch (op) {
  case ZQL_OP_ADD:
  case ZQL_OP_SUB:
  case ZQL_OP_MUL:
    if (ints) {
      int64_t v;
      bool ovf = op == ZQL_OP_ADD   ? __builtin_add_overflow(l->i, r->i, &v)
                 : op == ZQL_OP_SUB ? __builtin_sub_overflow(l->i, r->i, &v)
                                    : __builtin_mul_overflow(l->i, r->i, &v);
      if (ovf)
        return false; /* the VM promotes and counts _overflow */
      *out = (kval_t){.k = K_INT, .i = v};
      return true;
    }
    *out = (kval_t){.k = K_DOUBLE,
                    .d = op == ZQL_OP_ADD ? x + y : op == ZQL_OP_SUB ? x - y : x * y};
    return true;
  case ZQL_OP_EQ: case ZQL_OP_NE: case ZQL_OP_LT: case ZQL_OP_LE: case ZQL_OP_GT:
  case ZQL_OP_GE: {
    if (!ints && (isnan(x) || isnan(y)))
      return false;
    int c = ints ? (l->i < r->i ? -1 : l->i > r->i) : (x < y ? -1 : x > y);
    bool v = op == ZQL_OP_EQ ? c == 0 : op == ZQL_OP_NE ? c != 0 : op == ZQL_OP_LT ? c < 0
             : op == ZQL_OP_LE ? c <= 0 : op == ZQL_OP_GT ? c > 0 : c >= 0;
    *out = (kval_t){.k = K_BOOL, .b = v};
    return true;
  }
  default:
    return false; /* division and modulo: the VM's rules for zero and types */
  }
}

static bool fold(builder_t *b, const zql_node_t *n, kval_t *out)
{
  switch (n->kind) {
  case ZQL_N_INT:
  case ZQL_N_DURATION:
    *out = (kval_t){.k = K_INT, .i = n->u.lit.i};
    return true;
  case ZQL_N_DOUBLE:
    *out = (kval_t){.k = K_DOUBLE, .d = n->u.lit.d};
    return true;
  case ZQL_N_STRING:
    *out = (kval_t){.k = K_STR, .s = n->u.lit.str.s, .len = n->u.lit.str.len};
    return true;
  case ZQL_N_BOOL:
    *out = (kval_t){.k = K_BOOL, .b = n->u.lit.b};
    return true;
  case ZQL_N_NULL:
    *out = (kval_t){.k = K_NULL};
    return true;
  case ZQL_N_MISSING_LIT:
    *out = (kval_t){.k = K_MISSING};
    return true;
  case ZQL_N_PARAMREF:
    return n->u.paramref.decl && fold(b, n->u.paramref.decl->u.decl.value, out);
  case ZQL_N_UNARY: {
    kval_t v;
    if (!fold(b, n->u.unary.arg, &v))
      return false;
    if (n->u.unary.op == ZQL_OP_NEG && v.k == K_INT && v.i != INT64_MIN) {
      *out = (kval_t){.k = K_INT, .i = -v.i};
      return true;
    }
    if (n->u.unary.op == ZQL_OP_NEG && v.k == K_DOUBLE) {
      *out = (kval_t){.k = K_DOUBLE, .d = -v.d};
      return true;
    }
    if (n->u.unary.op == ZQL_OP_PLUS && (v.k == K_INT || v.k == K_DOUBLE)) {
      *out = v;
      return true;
    }
    if (n->u.unary.op == ZQL_OP_NOT && v.k == K_BOOL) {
      *out = (kval_t){.k = K_BOOL, .b = !v.b};
      return true;
    }
    return false;
  }
  case ZQL_N_BINARY: {
    kval_t l, r;
    if (!fold(b, n->u.binary.lhs, &l) || !fold(b, n->u.binary.rhs, &r))
      return false;
    if ((n->u.binary.op == ZQL_OP_AND || n->u.binary.op == ZQL_OP_OR) && l.k == K_BOOL &&
        r.k == K_BOOL) {
      *out = (kval_t){.k = K_BOOL,
                      .b = n->u.binary.op == ZQL_OP_AND ? (l.b && r.b) : (l.b || r.b)};
      return true;
    }
    return fold_binary(n->u.binary.op, &l, &r, out);
  }
  case ZQL_N_CALL:
    /* date("constant with offset") folds to a date; everything else runs in the VM */
    if (n->u.call.func && !n->u.call.is_agg && strcmp(n->u.call.name, "date") == 0 &&
        n->u.call.args.n == 1) {
      kval_t s;
      int64_t ms;
      if (fold(b, n->u.call.args.items[0], &s) && s.k == K_STR &&
          zql_parse_iso8601(s.s, s.len, NULL, &ms) == 0) {
        *out = (kval_t){.k = K_DATE, .i = ms};
        return true;
      }
    }
    return false;
  default:
    return false;
  }
}

static void kval_text(zql_strbuf_t *sb, const zql_node_t *n, const struct kval *k)
{
  switch (k->k) {
  case K_NULL: zql_strbuf_adds(sb, "null"); return;
  case K_MISSING: zql_strbuf_adds(sb, "missing"); return;
  case K_BOOL: zql_strbuf_adds(sb, k->b ? "true" : "false"); return;
  case K_INT:
    if (n->type == ZQL_T_DURATION)
      duration_text(sb, k->i);
    else
      zql_strbuf_addf(sb, "%" PRId64, k->i);
    return;
  case K_DOUBLE: {
    char buf[64];
    for (int prec = 15; prec <= 17; prec++) { /* the shortest text that reads back */
      snprintf(buf, sizeof buf, "%.*g", prec, k->d);
      if (strtod(buf, NULL) == k->d)
        break;
    }
    zql_strbuf_adds(sb, buf);
    if (!strpbrk(buf, ".eEni"))
      zql_strbuf_adds(sb, ".0");
    return;
  }
  case K_STR: zql_strbuf_add_quoted(sb, k->s, k->len); return;
  case K_DATE: {
    zql_civil_t c;
    zql_tz_to_civil(zql_tz_utc(), k->i, &c);
    zql_strbuf_addf(sb, "date(\"%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ\")", (int64_t)c.year,
                    c.month, c.day, c.hour, c.minute, c.second, c.ms);
    return;
  }
  default: return;
  }
}

static uint32_t const_of(builder_t *b, const kval_t *v)
{
  switch (v->k) {
  case K_NULL: return const_null(b);
  case K_BOOL: return const_bool(b, v->b);
  case K_INT: return const_int(b, v->i);
  case K_DOUBLE: return const_double(b, v->d);
  case K_STR: return const_str(b, v->s, v->len);
  case K_DATE: return const_date(b, v->i);
  default: ZQL_BUG("const_of: kind %d", (int)v->k);
  }
}

/* }==== */

/* {==== expressions ===================================================================== */

static uint16_t expr(builder_t *b, const zql_node_t *n);

/* Register holding event path fields[0..nf) (deduplicated across the statement). */
static uint16_t extract_reg(builder_t *b, const char *const *fields, uint32_t nf)
{
  zql_plan_t *p = b->p;
  for (uint32_t i = 0; i < p->nextract; i++) {
    zql_pextract_t *x = &p->extract[i];
    if (x->nfields != nf)
      continue;
    uint32_t j = 0;
    while (j < nf && strcmp(x->fields[j], fields[j]) == 0)
      j++;
    if (j == nf)
      return x->reg;
  }
  zql_pextract_t *v = balloc(b, (p->nextract + 1) * sizeof *v);
  const char **f = balloc(b, (nf ? nf : 1) * sizeof *f);
  if (b->err)
    return 0;
  if (p->nextract)
    memcpy(v, p->extract, p->nextract * sizeof *v);
  for (uint32_t j = 0; j < nf; j++)
    f[j] = bstrdup(b, fields[j]);
  /* extraction registers belong to the map program */
  zql_prog_t *save = b->prog;
  b->prog = &p->map;
  uint16_t reg = newreg(b, 1);
  b->prog = save;
  v[p->nextract] = (zql_pextract_t){f, nf, reg};
  p->extract = v;
  p->nextract++;
  return reg;
}

/* Apply steps[from..n) of a path to register r (STEPS), or return r when none remain. */
static uint16_t apply_steps(builder_t *b, uint16_t r, const zql_step_t *steps, uint32_t from,
                            uint32_t n)
{
  if (from >= n)
    return r;
  zql_plan_t *p = b->p;
  zql_psteps_t *v = balloc(b, (p->nsteps + 1) * sizeof *v);
  zql_step_t *s = balloc(b, (n - from) * sizeof *s);
  if (b->err)
    return r;
  if (p->nsteps)
    memcpy(v, p->steps, p->nsteps * sizeof *v);
  for (uint32_t i = from; i < n; i++) {
    s[i - from] = steps[i];
    s[i - from].name = bstrdup(b, steps[i].name);
  }
  v[p->nsteps] = (zql_psteps_t){s, n - from};
  p->steps = v;
  uint16_t d = newreg(b, 1);
  emit(b, ZQL_I_STEPS, 0, d, r, 0, p->nsteps++);
  return d;
}

static uint16_t path_expr(builder_t *b, const zql_node_t *n)
{
  const zql_step_t *st = n->u.path.steps;
  uint32_t ns = n->u.path.nsteps;
  switch (n->u.path.ref) {
  case ZQL_REF_EVENT: {
    /* the root and the leading field steps are extracted in the event pass */
    const char *fields[64];
    uint32_t nf = 0;
    fields[nf++] = n->u.path.root;
    uint32_t i = 0;
    while (i < ns && st[i].kind == ZQL_STEP_FIELD && nf < ZQL_ARRAY_LEN(fields))
      fields[nf++] = st[i++].name;
    if (b->final_mode) {
      fail(b, ZQL_E_INTERNAL, "event path '%s' outside the map side", node_text(b, n));
      return 0;
    }
    return apply_steps(b, extract_reg(b, fields, nf), st, i, ns);
  }
  case ZQL_REF_ROW:
    return apply_steps(b, extract_reg(b, NULL, 0), st, 0, ns);
  case ZQL_REF_SEQ:
    if (b->p->seq_reg < 0) {
      zql_prog_t *save = b->prog;
      b->prog = &b->p->map;
      b->p->seq_reg = newreg(b, 1);
      b->prog = save;
    }
    return apply_steps(b, (uint16_t)b->p->seq_reg, st, 0, ns);
  case ZQL_REF_LET:
  case ZQL_REF_UNWIND:
  case ZQL_REF_KEY:
  case ZQL_REF_OUTPUT:
  case ZQL_REF_LOCAL: {
    const zql_node_t *t = n->u.path.target;
    const bind_t *bd = t && t->kind == ZQL_N_REDUCER ? lookup_local(b, t, n->u.path.root)
                                                     : lookup(b, t);
    if (!bd) {
      fail(b, ZQL_E_INTERNAL, "planner: '%s' is not bound here", n->u.path.root);
      return 0;
    }
    return apply_steps(b, bd->reg, st, 0, ns);
  }
  case ZQL_REF_PER: {
    /* `u` is the entity; `u.item...` a per item's final value, then the rest of the path */
    const zql_node_t *t = n->u.path.target;
    const bind_t *bd = lookup(b, t);
    if (!bd) {
      fail(b, ZQL_E_INTERNAL, "planner: per name '%s' is not bound here", n->u.path.root);
      return 0;
    }
    return apply_steps(b, bd->reg, st, t->kind == ZQL_N_AGGITEM ? 1 : 0, ns);
  }
  case ZQL_REF_AGGCOL: {
    /* a `from agg` row is a document {columns..., __state: {...}}: extract like an event */
    const char *fields[64];
    uint32_t nf = 0;
    fields[nf++] = n->u.path.root;
    uint32_t i = 0;
    while (i < ns && st[i].kind == ZQL_STEP_FIELD && nf < ZQL_ARRAY_LEN(fields))
      fields[nf++] = st[i++].name;
    if (!event_side(b)) {
      fail(b, ZQL_E_UNSUPPORTED, "'%s': a column of the source after a per stage",
           node_text(b, n));
      return 0;
    }
    return apply_steps(b, extract_reg(b, fields, nf), st, i, ns);
  }
  case ZQL_REF_UNRESOLVED:
  default:
    fail(b, ZQL_E_INTERNAL, "planner: unresolved name '%s'", n->u.path.root);
    return 0;
  }
}

/* Compile each of n nodes into consecutive registers (returns the first). */
static uint16_t expr_block(builder_t *b, zql_node_t *const *items, uint32_t n)
{
  uint16_t base = newreg(b, (uint16_t)(n ? n : 1));
  for (uint32_t i = 0; i < n; i++) {
    uint16_t r = expr(b, items[i]);
    emit(b, ZQL_I_MOVE, 0, base + i, r, 0, 0);
  }
  return base;
}

static uint32_t add_call(builder_t *b, const char *name, uint16_t nargs, int32_t *konst)
{
  zql_plan_t *p = b->p;
  zql_pcall_t *v = balloc(b, (p->ncalls + 1) * sizeof *v);
  if (b->err)
    return 0;
  if (p->ncalls)
    memcpy(v, p->calls, p->ncalls * sizeof *v);
  v[p->ncalls] = (zql_pcall_t){bstrdup(b, name), nargs, konst};
  p->calls = v;
  return p->ncalls++;
}

/* Aggregator calls are compiled by compute_map (map side) and as FINAL (final side). */
static uint16_t agg_final(builder_t *b, const zql_node_t *n)
{
  const bind_t *bd = lookup(b, n);
  if (!bd || bd->slot < 0) {
    fail(b, ZQL_E_INTERNAL, "planner: aggregator '%s' has no slot", node_text(b, n));
    return 0;
  }
  uint16_t d = newreg(b, 1);
  emit(b, ZQL_I_FINAL, 0, d, 0, 0, (uint32_t)bd->slot);
  return d;
}

static uint16_t call_expr(builder_t *b, const zql_node_t *n)
{
  if (n->u.call.is_agg) {
    if (!b->final_mode) {
      fail(b, ZQL_E_INTERNAL, "planner: aggregator '%s' on the map side", n->u.call.name);
      return 0;
    }
    return agg_final(b, n);
  }
  if (n->u.call.reducer) {
    fail(b, ZQL_E_INTERNAL, "planner: reducer '%s' outside an aggregation", n->u.call.name);
    return 0;
  }
  const char *name = n->u.call.name;
  const zql_list_t *args = &n->u.call.args;
  if (strcmp(name, "def") == 0) {
    uint16_t a = expr(b, args->items[0]);
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_DEF, 0, d, a, 0, 0);
    return d;
  }
  if (strcmp(name, "coalesce") == 0) {
    uint16_t acc = expr(b, args->items[0]);
    for (uint32_t i = 1; i < args->n; i++) {
      uint16_t r = expr(b, args->items[i]);
      uint16_t d = newreg(b, 1);
      emit(b, ZQL_I_COALESCE, 0, d, acc, r, 0);
      acc = d;
    }
    /* coalesce gives null, not MISSING/ERROR, when every argument is nullish */
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_COALESCE, 0, d, acc, expr(b, &(zql_node_t){.kind = ZQL_N_NULL}), 0);
    return d;
  }
  if (strcmp(name, "if") == 0) {
    uint16_t c = expr(b, args->items[0]);
    uint16_t x = expr(b, args->items[1]);
    uint16_t y = expr(b, args->items[2]);
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_IF, 0, d, c, x, y);
    return d;
  }
  if (strcmp(name, "hll_downgrade") == 0) {
    fail(b, ZQL_E_UNSUPPORTED, "hll_downgrade(...) is not supported by this version of the "
         "engine (merging states of different precisions comes with the results store)");
    return 0;
  }
  if (strcmp(name, "session") == 0) {
    fail(b, ZQL_E_UNSUPPORTED, "session(...) keys are not supported by this version of the "
         "engine");
    return 0;
  }
  /* an ordinary scalar: arguments into consecutive registers; constants recorded */
  uint16_t nargs = (uint16_t)args->n;
  int32_t *konst = balloc(b, (nargs ? nargs : 1) * sizeof *konst);
  if (b->err)
    return 0;
  uint16_t base = newreg(b, nargs ? nargs : 1);
  const zql_func_t *f = n->u.call.func;
  for (uint16_t i = 0; i < nargs; i++) {
    const zql_node_t *arg = args->items[i];
    char kind = f ? zql_func_arg_kind(f, i) : 'e';
    kval_t k;
    konst[i] = -1;
    if (kind == 'u' && arg->kind == ZQL_N_PATH) {
      uint32_t c = const_str(b, arg->u.path.root, (uint32_t)strlen(arg->u.path.root));
      konst[i] = (int32_t)c;
      emit(b, ZQL_I_LOADK, 0, base + i, 0, 0, c);
      continue;
    }
    if (arg->kind == ZQL_N_REGEX) {
      uint32_t c = const_regex(b, arg->u.regex.pattern, arg->u.regex.flags);
      konst[i] = (int32_t)c;
      emit(b, ZQL_I_LOADK, 0, base + i, 0, 0, c);
      continue;
    }
    if (fold(b, arg, &k) && k.k != K_MISSING) {
      uint32_t c = const_of(b, &k);
      konst[i] = (int32_t)c;
      emit(b, ZQL_I_LOADK, 0, base + i, 0, 0, c);
      continue;
    }
    uint16_t r = expr(b, arg);
    emit(b, ZQL_I_MOVE, 0, base + i, r, 0, 0);
  }
  uint32_t site = add_call(b, name, nargs, konst);
  uint16_t d = newreg(b, 1);
  emit(b, ZQL_I_CALL, 0, d, base, nargs, site);
  return d;
}

static const char *bucket_const_str(builder_t *b, const zql_node_t *n)
{
  kval_t k;
  if (!n)
    return NULL;
  if (!fold(b, n, &k) || k.k != K_STR) {
    fail(b, ZQL_E_INTERNAL, "planner: bucket option is not a constant string");
    return NULL;
  }
  return zql_arena_strndup(b->a, k.s, k.len);
}

static uint16_t bucket_expr(builder_t *b, const zql_node_t *n)
{
  zql_plan_t *p = b->p;
  uint16_t ts = expr(b, n->u.bucket.ts);
  zql_pbucket_t spec = {0};
  spec.unit = bstrdup(b, n->u.bucket.unit);
  spec.every = 1;
  if (n->u.bucket.every) {
    kval_t k;
    if (fold(b, n->u.bucket.every, &k) && k.k == K_INT)
      spec.every = k.i;
  }
  spec.tz = n->u.bucket.tz ? bucket_const_str(b, n->u.bucket.tz) : "UTC";
  spec.week_start = bstrdup(b, n->u.bucket.week_start);
  spec.origin = bucket_const_str(b, n->u.bucket.origin);
  zql_pbucket_t *v = balloc(b, (p->nbuckets + 1) * sizeof *v);
  if (b->err)
    return 0;
  if (p->nbuckets)
    memcpy(v, p->buckets, p->nbuckets * sizeof *v);
  v[p->nbuckets] = spec;
  p->buckets = v;
  uint16_t d = newreg(b, 1);
  emit(b, ZQL_I_BUCKET, 0, d, ts, 0, p->nbuckets++);
  return d;
}

static uint16_t doc_expr(builder_t *b, const zql_node_t *n)
{
  zql_plan_t *p = b->p;
  const zql_list_t *fl = &n->u.list;
  zql_pdocspec_t spec = {balloc(b, (fl->n ? fl->n : 1) * sizeof(char *)), fl->n};
  uint16_t base = newreg(b, (uint16_t)(fl->n ? fl->n : 1));
  for (uint32_t i = 0; i < fl->n && !b->err; i++) {
    spec.names[i] = bstrdup(b, fl->items[i]->u.docfield.name);
    uint16_t r = expr(b, fl->items[i]->u.docfield.value);
    emit(b, ZQL_I_MOVE, 0, base + i, r, 0, 0);
  }
  zql_pdocspec_t *v = balloc(b, (p->ndocs + 1) * sizeof *v);
  if (b->err)
    return 0;
  if (p->ndocs)
    memcpy(v, p->docs, p->ndocs * sizeof *v);
  v[p->ndocs] = spec;
  p->docs = v;
  uint16_t d = newreg(b, 1);
  emit(b, ZQL_I_DOC, 0, d, base, (unsigned)fl->n, p->ndocs++);
  return d;
}

static zql_opcode_t binop(zql_op_t op)
{
  switch (op) {
  case ZQL_OP_ADD: return ZQL_I_ADD;
  case ZQL_OP_SUB: return ZQL_I_SUB;
  case ZQL_OP_MUL: return ZQL_I_MUL;
  case ZQL_OP_DIV: return ZQL_I_DIV;
  case ZQL_OP_MOD: return ZQL_I_MOD;
  case ZQL_OP_EQ: return ZQL_I_EQ;
  case ZQL_OP_NE: return ZQL_I_NE;
  case ZQL_OP_LT: return ZQL_I_LT;
  case ZQL_OP_LE: return ZQL_I_LE;
  case ZQL_OP_GT: return ZQL_I_GT;
  case ZQL_OP_GE: return ZQL_I_GE;
  case ZQL_OP_AND: return ZQL_I_AND;
  case ZQL_OP_OR: return ZQL_I_OR;
  case ZQL_OP_COALESCE: return ZQL_I_COALESCE;
  default: ZQL_BUG("binop %d", (int)op);
  }
}

static uint16_t expr(builder_t *b, const zql_node_t *n)
{
  if (b->err)
    return 0;
  kval_t k;
  if (n->kind != ZQL_N_PATH && fold(b, n, &k)) {
    uint16_t d = newreg(b, 1);
    if (k.k == K_MISSING)
      emit(b, ZQL_I_MISSING, 0, d, 0, 0, 0);
    else
      emit(b, ZQL_I_LOADK, 0, d, 0, 0, const_of(b, &k));
    return d;
  }
  switch (n->kind) {
  case ZQL_N_REGEX: {
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_LOADK, 0, d, 0, 0, const_regex(b, n->u.regex.pattern, n->u.regex.flags));
    return d;
  }
  case ZQL_N_PATH:
    return path_expr(b, n);
  case ZQL_N_CALL:
    return call_expr(b, n);
  case ZQL_N_BUCKET:
    return bucket_expr(b, n);
  case ZQL_N_UNARY: {
    uint16_t a = expr(b, n->u.unary.arg);
    uint16_t d = newreg(b, 1);
    zql_opcode_t op = n->u.unary.op == ZQL_OP_NEG    ? ZQL_I_NEG
                      : n->u.unary.op == ZQL_OP_PLUS ? ZQL_I_PLUS
                                                     : ZQL_I_NOT;
    emit(b, op, 0, d, a, 0, 0);
    return d;
  }
  case ZQL_N_BINARY: {
    zql_op_t op = n->u.binary.op;
    if (op == ZQL_OP_MATCH || op == ZQL_OP_NOMATCH) {
      const zql_node_t *re = n->u.binary.rhs;
      uint32_t c;
      kval_t s;
      if (re->kind == ZQL_N_REGEX)
        c = const_regex(b, re->u.regex.pattern, re->u.regex.flags);
      else if (fold(b, re, &s) && s.k == K_STR)
        c = const_regex(b, zql_arena_strndup(b->a, s.s, s.len), "");
      else {
        fail(b, ZQL_E_INTERNAL, "planner: =~ needs a constant regex");
        return 0;
      }
      uint16_t a = expr(b, n->u.binary.lhs);
      uint16_t d = newreg(b, 1);
      emit(b, ZQL_I_MATCH, op == ZQL_OP_NOMATCH, d, a, 0, c);
      return d;
    }
    /* `true and x` is x, `false or x` is x (R3: TRUE and x == x for every x) */
    if (op == ZQL_OP_AND || op == ZQL_OP_OR) {
      kval_t l;
      if (fold(b, n->u.binary.lhs, &l) && l.k == K_BOOL && l.b == (op == ZQL_OP_AND))
        return expr(b, n->u.binary.rhs);
    }
    uint16_t l = expr(b, n->u.binary.lhs);
    uint16_t r = expr(b, n->u.binary.rhs);
    uint16_t d = newreg(b, 1);
    emit(b, binop(op), 0, d, l, r, 0);
    return d;
  }
  case ZQL_N_IS: {
    uint16_t a = expr(b, n->u.is.arg);
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_IS, (n->u.is.missing ? 1u : 0u) | (n->u.is.negated ? 2u : 0u), d, a, 0, 0);
    return d;
  }
  case ZQL_N_IN: {
    uint16_t a = expr(b, n->u.in.arg);
    uint16_t s = expr(b, n->u.in.set);
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_IN, n->u.in.negated ? 2u : 0u, d, a, s, 0);
    return d;
  }
  case ZQL_N_PARAMREF:
    /* a parameter that does not fold to a scalar (an array, a document): its value */
    if (!n->u.paramref.decl) {
      fail(b, ZQL_E_INTERNAL, "planner: unknown parameter $%s", n->u.paramref.name);
      return 0;
    }
    return expr(b, n->u.paramref.decl->u.decl.value);
  case ZQL_N_ARRAY: {
    uint16_t base = expr_block(b, n->u.list.items, n->u.list.n);
    uint16_t d = newreg(b, 1);
    emit(b, ZQL_I_ARRAY, 0, d, base, n->u.list.n, 0);
    return d;
  }
  case ZQL_N_DOC:
    return doc_expr(b, n);
  default:
    fail(b, ZQL_E_INTERNAL, "planner: unexpected %s in an expression",
         zql_node_kind_name(n->kind));
    return 0;
  }
}

/* }==== */

/* {==== aggregator slots ================================================================= */

static bool const_int_of(builder_t *b, const zql_node_t *n, int64_t *out)
{
  kval_t k;
  if (!n || !fold(b, n, &k))
    return false;
  if (k.k == K_INT) {
    *out = k.i;
    return true;
  }
  if (k.k == K_DOUBLE && k.d == floor(k.d) && fabs(k.d) < 9e15) {
    *out = (int64_t)k.d;
    return true;
  }
  return false;
}

static bool const_num_of(builder_t *b, const zql_node_t *n, double *out)
{
  kval_t k;
  return n && fold(b, n, &k) && fold_num(&k, out);
}

static zql_ptable_t *cur_table(builder_t *b) { return &b->p->tables[b->table]; }

static int new_slot(builder_t *b, const zql_pagg_t *a)
{
  zql_ptable_t *t = cur_table(b);
  zql_pagg_t *v = balloc(b, (t->naggs + 1) * sizeof *v);
  if (b->err)
    return 0;
  if (t->naggs)
    memcpy(v, t->aggs, t->naggs * sizeof *v);
  v[t->naggs] = *a;
  t->aggs = v;
  return (int)t->naggs++;
}

/* Fill the constant parameters of an aggregator call (the analyzer checked them). */
static void agg_params(builder_t *b, const zql_node_t *call, const zql_node_t *item,
                       zql_pagg_t *a, uint32_t first_cond)
{
  const char *name = call->u.call.name;
  const zql_list_t *args = &call->u.call.args;
  a->func = bstrdup(b, name);
  a->text = node_text(b, call);
  a->nondet = call->u.call.func && (call->u.call.func->flags & ZQL_FN_NONDET);
  if (strcmp(name, "median") == 0) {
    a->func = "quantile";
    a->q = 0.5;
    a->compression = 100;
  } else if (strcmp(name, "quantile") == 0) {
    const_num_of(b, args->items[1], &a->q);
    a->compression = 100;
    if (args->n > 2)
      const_num_of(b, args->items[2], &a->compression);
  } else if (strcmp(name, "hll") == 0 || strcmp(name, "theta") == 0) {
    a->has_n = args->n > 1 && const_int_of(b, args->items[1], &a->n);
  } else if (strcmp(name, "topk") == 0 || strcmp(name, "maximum") == 0 ||
             strcmp(name, "minimum") == 0 || strcmp(name, "collect") == 0 ||
             strcmp(name, "sample") == 0) {
    a->has_n = const_int_of(b, args->items[1], &a->n);
  } else if (strcmp(name, "distinct_count") == 0) {
    a->has_n = item && item->u.aggitem.limit && const_int_of(b, item->u.aggitem.limit, &a->n);
    a->else_hll = item && item->u.aggitem.else_ != NULL;
  } else if (strcmp(name, "histogram") == 0) {
    const zql_node_t *e = args->items[1];
    if (e->kind == ZQL_N_PARAMREF && e->u.paramref.decl)
      e = e->u.paramref.decl->u.decl.value;
    if (e->kind == ZQL_N_ARRAY) {
      a->nedges = e->u.list.n;
      a->edges = balloc(b, (a->nedges ? a->nedges : 1) * sizeof(double));
      for (uint32_t i = 0; i < a->nedges && !b->err; i++)
        const_num_of(b, e->u.list.items[i], &a->edges[i]);
    }
  } else if (strcmp(name, "window_funnel") == 0) {
    const_int_of(b, args->items[1], &a->window_ms);
  } else if (strcmp(name, "sequence_match") == 0) {
    kval_t k;
    if (fold(b, args->items[0], &k) && k.k == K_STR)
      a->pattern = zql_arena_strndup(b->a, k.s, k.len);
  }
  a->nconds = args->n > first_cond ? args->n - first_cond : 0;
}

/* The upstream aggregator call behind a `from agg` column (NULL when the column is not
 * one aggregator call). *item gets the upstream compute item, when there is one. */
static const zql_node_t *upstream_call(const zql_node_t *col, const zql_node_t **item)
{
  const zql_node_t *t = col->u.path.target;
  *item = NULL;
  if (!t)
    return NULL;
  if (t->kind == ZQL_N_AGGITEM) {
    *item = t;
    const zql_node_t *e = t->u.aggitem.expr;
    return e && e->kind == ZQL_N_CALL && e->u.call.is_agg ? e : NULL;
  }
  if (t->kind == ZQL_N_TABLE)
    return t->u.table.reducer;
  return NULL;
}

/* merge(col): merge the stored states of a `from agg` column. The slot runs the
 * "merge" aggregator with the upstream aggregator's kind and parameters; its input is the
 * row's saved state, __state.col. */
static void agg_merge_map(builder_t *b, const zql_node_t *call)
{
  const zql_node_t *col = call->u.call.args.items[0];
  const zql_node_t *item = NULL;
  const zql_node_t *up = col->kind == ZQL_N_PATH ? upstream_call(col, &item) : NULL;
  if (!up || up->u.call.reducer) {
    fail(b, ZQL_E_UNSUPPORTED, "merge(%s): the column must be one built-in aggregator call "
         "of the source", node_text(b, col));
    return;
  }
  zql_pagg_t a = {0};
  a.reducer = -1;
  a.share = -1;
  if (col->u.path.target->kind == ZQL_N_TABLE) {
    /* a map aggregate's table: its reducer is written without the emitted value */
    const zql_list_t *args = &up->u.call.args;
    a.inner = bstrdup(b, up->u.call.name);
    if (strcmp(a.inner, "quantile") == 0) {
      a.compression = 100;
      if (args->n > 0)
        const_num_of(b, args->items[0], &a.q);
    } else if (strcmp(a.inner, "median") == 0) {
      a.inner = "quantile";
      a.q = 0.5;
    } else if (args->n > 0) {
      a.has_n = const_int_of(b, args->items[0], &a.n);
    }
  } else {
    zql_pagg_t u = {0};
    agg_params(b, up, item, &u, up->u.call.args.n);
    a = u;
    a.inner = u.func;
    a.nconds = 0;
  }
  a.func = "merge";
  a.reducer = -1;
  a.share = -1;
  a.text = node_text(b, call);
  a.has_by = a.has_weight = false;
  int slot = new_slot(b, &a);
  if (b->err)
    return;
  bind(b, call, 0, slot);
  const char *fields[2] = {"__state", col->u.path.root};
  uint16_t r = extract_reg(b, fields, 2);
  uint16_t base = newreg(b, 1);
  emit(b, ZQL_I_MOVE, 0, base, r, 0, 0);
  emit(b, ZQL_I_ADDAGG, 0, b->table, base, 1, (uint32_t)slot);
}

/* The index of user reducer `r` in the plan, compiling its four parts on first use. */
static int32_t reducer_index(builder_t *b, const zql_node_t *r)
{
  zql_plan_t *p = b->p;
  for (uint32_t i = 0; i < p->nreducers; i++)
    if (strcmp(p->reducers[i].name, r->u.reducer.name) == 0)
      return (int32_t)i;
  zql_preducer_t *v = balloc(b, (p->nreducers + 1) * sizeof *v);
  if (b->err)
    return -1;
  if (p->nreducers)
    memcpy(v, p->reducers, p->nreducers * sizeof *v);
  p->reducers = v;
  zql_preducer_t *red = &v[p->nreducers];
  memset(red, 0, sizeof *red);
  red->name = bstrdup(b, r->u.reducer.name);
  red->has_merge = r->u.reducer.merge != NULL;
  zql_prog_t *save = b->prog;
  bool save_final = b->final_mode;
  uint32_t save_skip = b->skip_target, save_nskip = b->nskip;
  b->final_mode = false;
  b->skip_target = UINT32_MAX;
  struct { const zql_node_t *part; zql_prog_t *prog; const char *l1, *l2; } parts[4] = {
      {r->u.reducer.init, &red->init, NULL, NULL},
      {r->u.reducer.add, &red->add, "s", r->u.reducer.arg},
      {r->u.reducer.merge, &red->merge, "a", "b"},
      {r->u.reducer.final, &red->final, "s", NULL}};
  for (int k = 0; k < 4 && !b->err; k++) {
    if (!parts[k].part)
      continue;
    b->prog = parts[k].prog;
    newreg(b, 3); /* 0: the result, 1 and 2: the locals */
    uint32_t mark = b->nbinds;
    if (parts[k].l1) {
      bind(b, r, 1, -1);
      b->binds[b->nbinds - 1].name = parts[k].l1;
    }
    if (parts[k].l2) {
      bind(b, r, 2, -1);
      b->binds[b->nbinds - 1].name = parts[k].l2;
    }
    uint16_t res = expr(b, parts[k].part->u.decl.value);
    emit(b, ZQL_I_MOVE, 0, 0, res, 0, 0);
    emit(b, ZQL_I_HALT, 0, 0, 0, 0, 0);
    b->nbinds = mark;
  }
  b->prog = save;
  b->final_mode = save_final;
  b->skip_target = save_skip;
  b->nskip = save_nskip;
  return b->err ? -1 : (int32_t)p->nreducers++;
}

/* The map side of one aggregator call: its inputs into consecutive registers, an ERROR
 * input skipping the slot, then ADDAGG. */
static void agg_call_map(builder_t *b, const zql_node_t *call, const zql_node_t *item)
{
  const char *name = call->u.call.name;
  const zql_list_t *args = &call->u.call.args;
  zql_pagg_t a = {0};
  a.reducer = -1;
  a.share = -1;
  zql_node_t *x = NULL, *by = NULL, *weight = NULL;
  uint32_t first_cond = UINT32_MAX;
  a.reducer = -1;
  if (call->u.call.reducer) {
    a.func = "reducer";
    a.text = node_text(b, call);
    a.reducer = reducer_index(b, call->u.call.reducer);
    int slot = b->err ? 0 : new_slot(b, &a);
    if (b->err)
      return;
    bind(b, call, 0, slot);
    uint16_t r = expr(b, args->items[0]);
    uint16_t base = newreg(b, 1);
    uint32_t sk = emit(b, ZQL_I_CHKERR, 0, 0, r, 0, 0);
    emit(b, ZQL_I_MOVE, 0, base, r, 0, 0);
    emit(b, ZQL_I_ADDAGG, 0, b->table, base, 1, (uint32_t)slot);
    patch_to(b, sk, here(b));
    return;
  }
  if (strcmp(name, "merge") == 0) {
    agg_merge_map(b, call);
    return;
  }
  if (strcmp(name, "window_funnel") == 0) {
    by = args->items[0];
    first_cond = 2;
  } else if (strcmp(name, "sequence_match") == 0) {
    by = args->items[1];
    first_cond = 2;
  } else if (strcmp(name, "retention") == 0) {
    first_cond = 0;
  } else if (args->n > 0) {
    x = args->items[0];
  }
  if (strcmp(name, "first") == 0 || strcmp(name, "last") == 0)
    by = call->u.call.by; /* NULL: timestamp */
  weight = call->u.call.weight;
  agg_params(b, call, item, &a, first_cond == UINT32_MAX ? args->n : first_cond);
  if (strcmp(a.func, "quantile") == 0 && x) {
    /* one sketch per (expression, filter): p50, p95 and p99 of one value share it */
    a.share_key = zql_arena_printf(b->a, "%s|%s", node_text(b, x),
                                   item && item->u.aggitem.filter
                                       ? node_text(b, item->u.aggitem.filter) : "");
    zql_ptable_t *tab = cur_table(b);
    for (uint32_t j = 0; j < tab->naggs && a.share_key; j++)
      if (tab->aggs[j].share < 0 && tab->aggs[j].share_key &&
          strcmp(tab->aggs[j].share_key, a.share_key) == 0) {
        a.share = (int32_t)j;
        int slot = new_slot(b, &a);
        if (!b->err)
          bind(b, call, 0, slot);
        return; /* no inputs of its own: its sketch is fed by slot j */
      }
  }
  a.has_by = by != NULL || strcmp(name, "first") == 0 || strcmp(name, "last") == 0 ||
             first_cond == 2;
  a.has_weight = weight != NULL;
  int slot = new_slot(b, &a);
  if (b->err)
    return;
  bind(b, call, 0, slot);

  uint32_t nin = 1 + (a.has_by ? 1 : 0) + (a.has_weight ? 1 : 0) + a.nconds;
  uint16_t base = newreg(b, (uint16_t)nin);
  uint32_t skips[64];
  uint32_t nskips = 0;
  uint16_t r;
  if (x) {
    r = expr(b, x);
  } else {
    r = newreg(b, 1);
    emit(b, ZQL_I_LOADK, 0, r, 0, 0, const_bool(b, true)); /* count(): every row */
  }
  skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, r, 0, 0);
  emit(b, ZQL_I_MOVE, 0, base, r, 0, 0);
  uint16_t at = (uint16_t)(base + 1);
  if (a.has_by) {
    if (by) {
      r = expr(b, by);
    } else if (!event_side(b)) {
      fail(b, ZQL_E_UNSUPPORTED, "%s(...) after a per stage needs `by`: there is no event "
           "timestamp there", name);
      return;
    } else {
      const char *ts = "timestamp";
      r = extract_reg(b, &ts, 1);
    }
    skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, r, 0, 0);
    emit(b, ZQL_I_MOVE, 0, at++, r, 0, 0);
  }
  if (a.has_weight) {
    r = expr(b, weight);
    skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, r, 0, 0);
    emit(b, ZQL_I_MOVE, 0, at++, r, 0, 0);
  }
  for (uint32_t i = 0; i < a.nconds && !b->err; i++) {
    r = expr(b, args->items[first_cond + i]);
    if (nskips < ZQL_ARRAY_LEN(skips))
      skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, r, 0, 0);
    emit(b, ZQL_I_MOVE, 0, at++, r, 0, 0);
  }
  emit(b, ZQL_I_ADDAGG, 0, b->table, base, (unsigned)nin, (uint32_t)slot);
  for (uint32_t i = 0; i < nskips; i++)
    patch_to(b, skips[i], here(b));
}

static void find_aggs(builder_t *b, const zql_node_t *n, const zql_node_t *item);

static void find_aggs_cb(zql_node_t *child, void *arg)
{
  void **v = arg;
  find_aggs(v[0], child, v[1]);
}

static void find_aggs(builder_t *b, const zql_node_t *n, const zql_node_t *item)
{
  if (!n || b->err)
    return;
  if (n->kind == ZQL_N_CALL && n->u.call.is_agg) {
    agg_call_map(b, n, item);
    return;
  }
  void *v[2] = {b, (void *)item};
  zql_node_children((zql_node_t *)n, find_aggs_cb, v);
}

/* }==== */

/* {==== statements ====================================================================== */

static zql_plnode_t *lnode(builder_t *b, zql_plnode_t ***tail, const char *op,
                           const char *text)
{
  zql_plnode_t *l = balloc(b, sizeof *l);
  if (!l)
    return NULL;
  l->op = op;
  l->text = text;
  **tail = l;
  *tail = &l->child;
  return l;
}

/* Predicate pushdown: conjuncts `timestamp OP K` / `_seq OP K` become scan bounds. */
static bool time_const(builder_t *b, const zql_node_t *n, zql_bound_t *out)
{
  kval_t k;
  if (fold(b, n, &k) && k.k == K_DATE) {
    *out = (zql_bound_t){ZQL_BOUND_ABS, k.i, false};
    return true;
  }
  if (n->kind == ZQL_N_CALL && !n->u.call.is_agg && strcmp(n->u.call.name, "now") == 0) {
    *out = (zql_bound_t){ZQL_BOUND_NOW, 0, false};
    return true;
  }
  if (n->kind == ZQL_N_BINARY &&
      (n->u.binary.op == ZQL_OP_ADD || n->u.binary.op == ZQL_OP_SUB) &&
      n->u.binary.rhs->kind == ZQL_N_DURATION && time_const(b, n->u.binary.lhs, out)) {
    int64_t d = n->u.binary.rhs->u.lit.i;
    out->ms += n->u.binary.op == ZQL_OP_ADD ? d : -d;
    return true;
  }
  return false;
}

static bool is_root(const zql_node_t *n, zql_ref_kind_t ref, const char *root)
{
  return n->kind == ZQL_N_PATH && n->u.path.ref == ref && n->u.path.nsteps == 0 &&
         (!root || strcmp(n->u.path.root, root) == 0);
}

static zql_op_t flip(zql_op_t op)
{
  switch (op) {
  case ZQL_OP_LT: return ZQL_OP_GT;
  case ZQL_OP_LE: return ZQL_OP_GE;
  case ZQL_OP_GT: return ZQL_OP_LT;
  case ZQL_OP_GE: return ZQL_OP_LE;
  default: return op;
  }
}

static void tighten(zql_bound_t *bd, zql_bound_t v, bool lower)
{
  if (bd->kind == ZQL_BOUND_NONE || bd->kind != v.kind) {
    if (bd->kind == ZQL_BOUND_NONE || v.kind == ZQL_BOUND_ABS)
      *bd = v; /* prefer an absolute bound when kinds differ */
    return;
  }
  /* compare the effective bounds: ms + 1 for an exclusive lower / inclusive upper one */
  __int128 x = (__int128)v.ms + v.edge, y = (__int128)bd->ms + bd->edge;
  if (lower ? x > y : x < y)
    *bd = v;
}

static void pushdown(builder_t *b, const zql_node_t *n)
{
  if (n->kind != ZQL_N_BINARY)
    return;
  zql_op_t op = n->u.binary.op;
  if (op == ZQL_OP_AND) {
    pushdown(b, n->u.binary.lhs);
    pushdown(b, n->u.binary.rhs);
    return;
  }
  if (op != ZQL_OP_LT && op != ZQL_OP_LE && op != ZQL_OP_GT && op != ZQL_OP_GE &&
      op != ZQL_OP_EQ)
    return;
  const zql_node_t *l = n->u.binary.lhs, *r = n->u.binary.rhs;
  if (!is_root(l, ZQL_REF_EVENT, "timestamp") && !is_root(l, ZQL_REF_SEQ, NULL)) {
    const zql_node_t *t = l;
    l = r;
    r = t;
    op = flip(op);
  }
  zql_plan_t *p = b->p;
  if (is_root(l, ZQL_REF_EVENT, "timestamp")) {
    zql_bound_t v;
    if (!time_const(b, r, &v))
      return;
    if (op == ZQL_OP_GE || op == ZQL_OP_EQ)
      tighten(&p->ts_lo, (zql_bound_t){v.kind, v.ms, false}, true);
    if (op == ZQL_OP_GT)
      tighten(&p->ts_lo, (zql_bound_t){v.kind, v.ms, true}, true);
    if (op == ZQL_OP_LT)
      tighten(&p->ts_hi, (zql_bound_t){v.kind, v.ms, false}, false);
    if (op == ZQL_OP_LE || op == ZQL_OP_EQ)
      tighten(&p->ts_hi, (zql_bound_t){v.kind, v.ms, true}, false);
  } else if (is_root(l, ZQL_REF_SEQ, NULL)) {
    int64_t v;
    if (!const_int_of(b, r, &v))
      return;
    /* the scan range is (seq_lo, seq_hi] */
    if ((op == ZQL_OP_GT || op == ZQL_OP_GE || op == ZQL_OP_EQ) && v > INT64_MIN) {
      int64_t lo = op == ZQL_OP_GT ? v : v - 1;
      if (lo > p->seq_lo)
        p->seq_lo = lo;
    }
    if ((op == ZQL_OP_LT || op == ZQL_OP_LE || op == ZQL_OP_EQ) && v > INT64_MIN) {
      int64_t hi = op == ZQL_OP_LT ? v - 1 : v;
      if (hi < p->seq_hi)
        p->seq_hi = hi;
    }
  }
}

static void scan_text(builder_t *b, zql_strbuf_t *sb)
{
  zql_plan_t *p = b->p;
  if (p->source_agg)
    zql_strbuf_addf(sb, "agg %s", p->source_agg);
  else
    zql_strbuf_adds(sb, "event");
  if (p->seq_lo != INT64_MIN || p->seq_hi != INT64_MAX) {
    zql_strbuf_adds(sb, ", _seq in (");
    if (p->seq_lo == INT64_MIN)
      zql_strbuf_adds(sb, "-inf");
    else
      zql_strbuf_addf(sb, "%" PRId64, p->seq_lo);
    if (p->seq_hi == INT64_MAX)
      zql_strbuf_adds(sb, ", +inf)");
    else
      zql_strbuf_addf(sb, ", %" PRId64 "]", p->seq_hi);
  }
}

/* Row ops (where, let, unwind) of the declarative form, on the map program. */
static void rowops(builder_t *b, const zql_list_t *ops, zql_plnode_t ***tail)
{
  for (uint32_t i = 0; i < ops->n && !b->err; i++) {
    const zql_node_t *op = ops->items[i];
    switch (op->kind) {
    case ZQL_N_WHERE: {
      const zql_node_t *c = op->u.unary_clause.arg;
      lnode(b, tail, "Filter", node_text(b, c));
      kval_t k;
      if (fold(b, c, &k) && k.k == K_BOOL && k.b)
        break; /* where true */
      pushdown(b, c);
      uint16_t r = expr(b, c);
      skip_jump(b, ZQL_I_CHKERR, r);
      skip_jump(b, ZQL_I_JNT, r);
      break;
    }
    case ZQL_N_LET: {
      lnode(b, tail, "Let",
            zql_arena_printf(b->a, "%s = %s", op->u.decl.name,
                             node_text(b, op->u.decl.value)));
      uint16_t r = expr(b, op->u.decl.value);
      skip_jump(b, ZQL_I_CHKERR, r);
      bind(b, op, r, -1);
      break;
    }
    case ZQL_N_UNWIND: {
      lnode(b, tail, "Unwind",
            zql_arena_printf(b->a, "%s as %s%s", node_text(b, op->u.unwind.path),
                             op->u.unwind.alias, op->u.unwind.keep_empty ? " keep empty" : ""));
      uint16_t arr = expr(b, op->u.unwind.path);
      uint16_t it = newreg(b, 1);
      uint16_t x = newreg(b, 1);
      /* ITER: not an array (or empty without keep empty) -> skip the row */
      skip_jump(b, ZQL_I_ITER, arr);
      b->prog->code[b->prog->n - 1].dst = it;
      b->prog->code[b->prog->n - 1].flags = op->u.unwind.keep_empty ? 1 : 0;
      /* everything after this point loops over the elements; a skip goes to NEXT */
      uint32_t loop = here(b);
      skip_jump(b, ZQL_I_NEXT, it); /* done: the outer skip target */
      b->prog->code[loop].dst = x;
      b->skip_target = loop;
      bind(b, op, x, -1);
      break;
    }
    default:
      fail(b, ZQL_E_INTERNAL, "planner: row op %s", zql_node_kind_name(op->kind));
    }
  }
}

/* End the map program: every pending skip goes to the end (HALT), and every loop's tail
 * jumps back to its NEXT. */
static void finish_map(builder_t *b)
{
  if (b->skip_target != UINT32_MAX)
    emit(b, ZQL_I_JMP, 0, 0, 0, 0, b->skip_target); /* next element */
  uint32_t end = emit(b, ZQL_I_HALT, 0, 0, 0, 0, 0);
  for (uint32_t i = 0; i < b->nskip; i++)
    patch_to(b, b->skip_patch[i], end);
  b->nskip = 0;
}

/* Feed table t from the program being emitted: keys into consecutive registers (an ERROR
 * key skips the row, a `skip null` key skips NULL/MISSING), GROUP, then each item's
 * aggregator inputs and ADDAGG (an item's filter guards its calls). The Key and Agg lines
 * of EXPLAIN go to *keytext and *aggtext. */
static void feed_table(builder_t *b, uint32_t t, zql_node_t *const *kexpr,
                       const zql_node_t *const *knode, uint32_t nkeys,
                       const zql_list_t *items, zql_strbuf_t *keytext, zql_strbuf_t *aggtext)
{
  zql_plan_t *p = b->p;
  b->table = t;
  p->tables[t].bucket_col = p->tables[t].bucket = p->tables[t].count_slot = -1;
  uint16_t kbase = newreg(b, (uint16_t)(nkeys ? nkeys : 1));
  for (uint32_t i = 0; i < nkeys && !b->err; i++) {
    const zql_node_t *k = knode ? knode[i] : NULL;
    uint16_t r;
    if (k && k->u.key.per) {
      /* session(ts, gap d) per E: the start of E's session holding ts, looked up in the
       * sessions table the pre-pass built (session_tables) */
      int32_t st = -1;
      for (uint32_t j = 0; j < p->ntables; j++)
        if (p->tables[j].prepass && p->tables[j].name == (const char *)k)
          st = (int32_t)j;
      if (st < 0) {
        fail(b, ZQL_E_INTERNAL, "planner: no sessions table for key '%s'", k->u.key.name);
        return;
      }
      uint16_t e = expr(b, k->u.key.per);
      uint16_t ts = expr(b, k->u.key.expr->u.call.args.items[0]);
      r = newreg(b, 1);
      emit(b, ZQL_I_SESSION, 0, r, e, ts, (uint32_t)st);
    } else {
      r = expr(b, kexpr[i]);
      if (kexpr[i]->kind == ZQL_N_BUCKET && p->tables[t].bucket_col < 0 && !b->err) {
        p->tables[t].bucket_col = (int32_t)i; /* the output's b and tz (R16) */
        p->tables[t].bucket = (int32_t)p->nbuckets - 1;
      }
    }
    skip_jump(b, ZQL_I_CHKERR, r);
    if (k && k->u.key.skip_null)
      skip_jump(b, ZQL_I_JNULL, r);
    emit(b, ZQL_I_MOVE, 0, kbase + i, r, 0, 0);
    if (k)
      zql_strbuf_addf(keytext, "%s%s = %s%s%s%s", i ? ", " : "", k->u.key.name,
                      node_text(b, k->u.key.expr), k->u.key.per ? " per " : "",
                      k->u.key.per ? node_text(b, k->u.key.per) : "",
                      k->u.key.skip_null ? " skip null" : "");
    else
      zql_strbuf_addf(keytext, "%s%s", i ? ", " : "", node_text(b, kexpr[i]));
  }
  emit(b, ZQL_I_GROUP, 0, 0, kbase, nkeys, t);
  zql_ptable_t *tab = &p->tables[t];
  for (uint32_t i = 0; i < items->n && !b->err; i++) {
    const zql_node_t *it = items->items[i];
    uint32_t jf = UINT32_MAX, je = UINT32_MAX;
    if (it->u.aggitem.filter) {
      uint16_t f = expr(b, it->u.aggitem.filter);
      je = emit(b, ZQL_I_CHKERR, 0, 0, f, 0, 0);
      jf = emit(b, ZQL_I_JNT, 0, 0, f, 0, 0);
    }
    uint32_t before = tab->naggs;
    find_aggs(b, it->u.aggitem.expr, it);
    tab = &p->tables[t];
    if (jf != UINT32_MAX) {
      patch_to(b, je, here(b));
      patch_to(b, jf, here(b));
    }
    zql_strbuf_addf(aggtext, "%s%s: %s", i ? ", " : "", it->u.aggitem.name,
                    node_text(b, it->u.aggitem.expr));
    if (it->u.aggitem.filter)
      zql_strbuf_addf(aggtext, " where %s", node_text(b, it->u.aggitem.filter));
    for (uint32_t j = before; j < tab->naggs; j++)
      p->nondet |= tab->aggs[j].nondet;
  }
  if (b->incremental && !tab->intermediate && !b->err) {
    /* rows per group, kept with the stored states: how many late events a late partial
     * brings (R13's _late counter) */
    zql_pagg_t a = {0};
    a.func = "count";
    a.text = "count()";
    a.reducer = -1;
    a.share = -1;
    int slot = new_slot(b, &a);
    if (b->err)
      return;
    uint16_t r = newreg(b, 1);
    emit(b, ZQL_I_LOADK, 0, r, 0, 0, const_bool(b, true));
    emit(b, ZQL_I_ADDAGG, 0, t, r, 1, (uint32_t)slot);
    p->tables[t].count_slot = slot;
  }
}

/* Session keys: for each `session(ts, gap d) per E` key, table `first + i` groups the
 * rows by E and collects their times with the "sessions" aggregator; the pre-pass program
 * (plan->pre: the same row ops, then E and ts) feeds them in a first pass over the input.
 * The map program's SESSION instruction then finds each row's session start there. The
 * table's name field holds the KEY node while planning (matched by feed_table), then the
 * key's name. */
static void session_tables(builder_t *b, const zql_node_t *s, uint32_t first)
{
  zql_plan_t *p = b->p;
  const zql_list_t *keys = &s->u.query.keys;
  /* compile the pre-pass with its own skip state and bindings, in map's register file */
  uint32_t save_nskip = b->nskip, save_target = b->skip_target, save_binds = b->nbinds;
  uint32_t *save_patch = NULL;
  if (save_nskip) {
    save_patch = balloc(b, save_nskip * sizeof *save_patch);
    if (b->err)
      return;
    memcpy(save_patch, b->skip_patch, save_nskip * sizeof *save_patch);
  }
  b->nskip = 0;
  b->skip_target = UINT32_MAX;
  b->prog = &p->pre;
  b->regs = &p->map;
  zql_plnode_t *dummy = NULL, **tail = &dummy; /* EXPLAIN shows the row ops once */
  rowops(b, &s->u.query.rowops, &tail);
  uint32_t t = first;
  for (uint32_t i = 0; i < keys->n && !b->err; i++) {
    const zql_node_t *k = keys->items[i];
    if (!k->u.key.per)
      continue;
    zql_ptable_t *tab = &p->tables[t];
    tab->name = (const char *)k; /* matched by feed_table; renamed below */
    tab->prepass = true;
    tab->nkeys = 1;
    tab->having_reg = -1;
    tab->bucket_col = tab->bucket = tab->count_slot = -1;
    tab->into = "";
    zql_pagg_t a = {0};
    a.func = "sessions";
    a.reducer = -1;
    a.share = -1;
    a.text = node_text(b, k->u.key.expr);
    const zql_node_t *gap = k->u.key.expr->u.call.gap;
    if (!gap || !const_int_of(b, gap, &a.window_ms) || a.window_ms <= 0) {
      fail(b, ZQL_E_INTERNAL, "planner: session key without a positive constant gap");
      break;
    }
    b->table = t;
    int slot = new_slot(b, &a);
    if (b->err)
      break;
    uint16_t e = expr(b, k->u.key.per);
    skip_jump(b, ZQL_I_CHKERR, e);
    uint16_t base = newreg(b, 1);
    emit(b, ZQL_I_MOVE, 0, base, e, 0, 0);
    emit(b, ZQL_I_GROUP, 0, 0, base, 1, t);
    uint16_t ts = expr(b, k->u.key.expr->u.call.args.items[0]);
    uint32_t sk = emit(b, ZQL_I_CHKERR, 0, 0, ts, 0, 0);
    uint16_t in = newreg(b, 1);
    emit(b, ZQL_I_MOVE, 0, in, ts, 0, 0);
    emit(b, ZQL_I_ADDAGG, 0, t, in, 1, (uint32_t)slot);
    patch_to(b, sk, here(b));
    t++;
  }
  finish_map(b);
  /* each sessions table's final program: the entity and its session starts */
  b->regs = NULL;
  for (uint32_t j = first; j < t && !b->err; j++) {
    zql_ptable_t *tab = &p->tables[j];
    b->prog = &tab->final;
    b->table = j;
    tab->ncols = 2;
    tab->cols = balloc(b, 2 * sizeof *tab->cols);
    if (b->err)
      break;
    uint16_t rk = newreg(b, 1), rs = newreg(b, 1);
    emit(b, ZQL_I_KEY, 0, rk, 0, 0, 0);
    emit(b, ZQL_I_FINAL, 0, rs, 0, 0, 0);
    emit(b, ZQL_I_HALT, 0, 0, 0, 0, 0);
    tab->cols[0] = (zql_pcol_t){"entity", rk, true, -1};
    tab->cols[1] = (zql_pcol_t){"starts", rs, false, 0};
  }
  b->prog = &p->map;
  b->regs = NULL;
  b->nbinds = save_binds;
  b->skip_target = save_target;
  b->nskip = 0;
  for (uint32_t i = 0; i < save_nskip && !b->err; i++) {
    if (b->nskip == b->capskip) {
      fail(b, ZQL_E_INTERNAL, "planner: skip list");
      break;
    }
    b->skip_patch[b->nskip++] = save_patch[i];
  }
}

/* The declarative form: [per entity as u { items }] group by keys, compute items. A per
 * stage makes two tables: table 0 groups by the entity with the per items; its final
 * program loads the entity and the items' final values and feeds table 1 (the group by),
 * whose final program gives the output rows. */
static void build_grouped(builder_t *b, const zql_node_t *s, zql_plnode_t ***tail)
{
  zql_plan_t *p = b->p;
  const zql_list_t *keys = &s->u.query.keys;
  const zql_list_t *items = &s->u.query.compute;
  const zql_node_t *per = s->u.query.per;
  uint32_t main = per ? 1 : 0;
  uint32_t nsess = 0;
  for (uint32_t i = 0; i < keys->n; i++)
    nsess += keys->items[i]->u.key.per != NULL;
  if (nsess && per) {
    fail(b, ZQL_E_UNSUPPORTED, "session keys together with a per stage are not supported by "
         "this version of the engine");
    return;
  }
  p->ntables = main + 1 + nsess;
  p->tables = balloc(b, p->ntables * sizeof *p->tables);
  if (b->err)
    return;
  if (nsess)
    session_tables(b, s, main + 1);
  zql_strbuf_t kt = ZQL_STRBUF_INIT, at = ZQL_STRBUF_INIT;

  if (per) {
    /* MAP: the entity key and the per items into table 0 */
    zql_node_t *pk = per->u.per.key;
    p->tables[0].nkeys = 1;
    p->tables[0].intermediate = true;
    p->tables[0].having_reg = -1;
    feed_table(b, 0, &pk, NULL, 1, &per->u.per.items, &kt, &at);
    finish_map(b);
    b->skip_target = UINT32_MAX;
    zql_plnode_t *l = lnode(b, tail, "Per",
                            zql_arena_printf(b->a, "%s = %s; {%.*s}", per->u.per.alias, kt.buf,
                                             (int)at.len, at.len ? at.buf : ""));
    if (l)
      l->mark = "[two-level: per entity]";
    zql_strbuf_reset(&kt);
    zql_strbuf_reset(&at);
    /* table 0's final program: entity and per results, then it feeds table 1 */
    b->prog = &p->tables[0].final;
    b->table = 0;
    b->final_mode = true;
    uint16_t er = newreg(b, 1);
    emit(b, ZQL_I_KEY, 0, er, 0, 0, 0);
    bind(b, per, er, -1);
    for (uint32_t i = 0; i < per->u.per.items.n && !b->err; i++) {
      const zql_node_t *it = per->u.per.items.items[i];
      uint16_t r = expr(b, it->u.aggitem.expr);
      bind(b, it, r, -1);
    }
    b->final_mode = false;
  }

  /* the group by keys and compute items: from the map program, or from table 0's final */
  zql_node_t **kx = balloc(b, (keys->n ? keys->n : 1) * sizeof *kx);
  if (b->err)
    return;
  for (uint32_t i = 0; i < keys->n; i++)
    kx[i] = keys->items[i]->u.key.expr;
  p->tables[main].nkeys = keys->n;
  feed_table(b, main, kx, (const zql_node_t *const *)keys->items, keys->n, items, &kt, &at);
  for (uint32_t j = main + 1; j < p->ntables; j++)
    if (p->tables[j].prepass)
      p->tables[j].name = bstrdup(b, ((const zql_node_t *)p->tables[j].name)->u.key.name);
  /* aggregator calls of having, rank and order by get slots too (order by count()) */
  find_aggs(b, s->u.query.having, NULL);
  if (s->u.query.rank)
    find_aggs(b, s->u.query.rank->u.rank.by, NULL);
  for (uint32_t i = 0; i < s->u.query.order.n; i++)
    find_aggs(b, s->u.query.order.items[i]->u.order.expr, NULL);
  finish_map(b);
  if (keys->n)
    lnode(b, tail, "Key", zql_arena_strndup(b->a, kt.buf, kt.len));
  zql_plnode_t *agg = lnode(b, tail, "Agg", zql_arena_printf(b->a, "{%.*s}", (int)at.len,
                                                             at.len ? at.buf : ""));
  zql_strbuf_release(&kt);
  zql_strbuf_release(&at);
  if (agg)
    agg->mark = p->nondet ? "[mergeable; topk depends on the split]" : "[all mergeable]";

  /* FINAL of the main table: keys, computed items, having, rank, order by */
  zql_ptable_t *t = &p->tables[main];
  b->prog = &t->final;
  b->table = main;
  b->final_mode = true;
  t->ncols = keys->n + items->n;
  t->cols = balloc(b, (t->ncols ? t->ncols : 1) * sizeof *t->cols);
  for (uint32_t i = 0; i < keys->n && !b->err; i++) {
    uint16_t r = newreg(b, 1);
    emit(b, ZQL_I_KEY, 0, r, 0, 0, i);
    bind(b, keys->items[i], r, -1);
    t->cols[i] = (zql_pcol_t){bstrdup(b, keys->items[i]->u.key.name), r, true, -1};
  }
  for (uint32_t i = 0; i < items->n && !b->err; i++) {
    const zql_node_t *it = items->items[i];
    const zql_node_t *e = it->u.aggitem.expr;
    uint16_t r = expr(b, e);
    bind(b, it, r, -1);
    const bind_t *cb = e->kind == ZQL_N_CALL && e->u.call.is_agg ? lookup(b, e) : NULL;
    t->cols[keys->n + i] = (zql_pcol_t){bstrdup(b, it->u.aggitem.name), r, false,
                                        cb ? cb->slot : -1};
  }
  t->having_reg = -1;
  if (s->u.query.having) {
    lnode(b, tail, "Having", node_text(b, s->u.query.having));
    t->having_reg = expr(b, s->u.query.having);
  }
  if (s->u.query.rank) {
    const zql_node_t *rk = s->u.query.rank;
    t->has_rank = true;
    t->rank_reg = expr(b, rk->u.rank.by);
    t->rank_desc = rk->u.rank.desc;
    const_int_of(b, rk->u.rank.limit, &t->rank_limit);
    t->nrank_within = rk->u.rank.within.n;
    t->rank_within = balloc(b, (t->nrank_within ? t->nrank_within : 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < t->nrank_within && !b->err; i++) {
      const char *w = rk->u.rank.within.items[i]->u.path.root;
      for (uint32_t c = 0; c < t->ncols; c++)
        if (t->cols[c].is_key && strcmp(t->cols[c].name, w) == 0)
          t->rank_within[i] = c;
    }
    zql_plnode_t *l = lnode(b, tail, "Rank", node_text(b, rk));
    if (l)
      l->mark = "[sort+limit]";
  }
  const zql_list_t *ord = &s->u.query.order;
  if (ord->n) {
    p->order = balloc(b, ord->n * sizeof *p->order);
    p->norder = ord->n;
    zql_strbuf_t ob = ZQL_STRBUF_INIT;
    for (uint32_t i = 0; i < ord->n && !b->err; i++) {
      p->order[i].reg = expr(b, ord->items[i]->u.order.expr);
      p->order[i].desc = ord->items[i]->u.order.desc;
      zql_strbuf_addf(&ob, "%s%s", i ? ", " : "", node_text(b, ord->items[i]));
    }
    lnode(b, tail, "Order", zql_arena_strndup(b->a, ob.buf, ob.len));
    zql_strbuf_release(&ob);
  }
  emit(b, ZQL_I_HALT, 0, 0, 0, 0, 0);
  b->final_mode = false;
  b->prog = &p->map;
}

/* A row query: the rows after the row ops, with their let and unwind names and order-by
 * values, kept by ROW (no grouping, no aggregation). */
static void build_rowq(builder_t *b, const zql_node_t *s, zql_plnode_t ***tail)
{
  zql_plan_t *p = b->p;
  const zql_list_t *ops = &s->u.query.rowops;
  const zql_list_t *ord = &s->u.query.order;
  uint32_t nnames = 0;
  for (uint32_t i = 0; i < ops->n; i++)
    nnames += ops->items[i]->kind != ZQL_N_WHERE;
  p->rowq = true;
  p->row_names = balloc(b, (nnames ? nnames : 1) * sizeof *p->row_names);
  p->order = balloc(b, (ord->n ? ord->n : 1) * sizeof *p->order);
  if (b->err)
    return;
  uint16_t base = newreg(b, (uint16_t)(1 + nnames + ord->n));
  emit(b, ZQL_I_MOVE, 0, base, extract_reg(b, NULL, 0), 0, 0);
  uint32_t k = 0;
  for (uint32_t i = 0; i < ops->n && !b->err; i++) {
    const zql_node_t *op = ops->items[i];
    if (op->kind == ZQL_N_WHERE)
      continue;
    const bind_t *bd = lookup(b, op);
    p->row_names[k] = bstrdup(b, op->kind == ZQL_N_LET ? op->u.decl.name : op->u.unwind.alias);
    emit(b, ZQL_I_MOVE, 0, base + 1 + k, bd ? bd->reg : 0, 0, 0);
    k++;
  }
  p->nrow_names = nnames;
  zql_strbuf_t ob = ZQL_STRBUF_INIT;
  for (uint32_t i = 0; i < ord->n && !b->err; i++) {
    uint16_t r = expr(b, ord->items[i]->u.order.expr);
    emit(b, ZQL_I_MOVE, 0, base + 1 + nnames + i, r, 0, 0);
    p->order[i].reg = (uint16_t)(base + 1 + nnames + i);
    p->order[i].desc = ord->items[i]->u.order.desc;
    zql_strbuf_addf(&ob, "%s%s", i ? ", " : "", node_text(b, ord->items[i]));
  }
  p->norder = ord->n;
  emit(b, ZQL_I_ROW, 0, 0, base, 1 + nnames + ord->n, 0);
  finish_map(b);
  lnode(b, tail, "Rows", NULL);
  if (ord->n)
    lnode(b, tail, "Order", zql_arena_strndup(b->a, ob.buf, ob.len));
  zql_strbuf_release(&ob);
}

/* The procedural form: map { let / if / when / for / emit }. */
static void map_block(builder_t *b, const zql_node_t *blk);

static uint32_t table_index(builder_t *b, const zql_node_t *decl)
{
  zql_plan_t *p = b->p;
  for (uint32_t i = 0; i < p->ntables; i++)
    if (strcmp(p->tables[i].name, decl->u.table.name) == 0)
      return i;
  zql_ptable_t *v = balloc(b, (p->ntables + 1) * sizeof *v);
  if (b->err)
    return 0;
  if (p->ntables)
    memcpy(v, p->tables, p->ntables * sizeof *v);
  p->tables = v;
  zql_ptable_t *t = &v[p->ntables];
  memset(t, 0, sizeof *t);
  t->name = bstrdup(b, decl->u.table.name);
  t->nkeys = decl->u.table.fields.n;
  t->having_reg = -1;
  t->bucket_col = t->bucket = t->count_slot = -1;
  /* the table's reducer: its call written without the emitted value (see funclist.h) */
  const zql_node_t *rc = decl->u.table.reducer;
  zql_pagg_t a = {0};
  a.reducer = -1;
  a.share = -1;
  if (rc->u.call.reducer) {
    a.func = "reducer";
    a.text = node_text(b, rc);
    a.reducer = reducer_index(b, rc->u.call.reducer);
    t = &p->tables[p->ntables]; /* reducer_index may not move tables, but be safe */
    t->aggs = balloc(b, sizeof *t->aggs);
    if (b->err)
      return 0;
    t->aggs[0] = a;
    t->naggs = 1;
    return p->ntables++;
  }
  a.func = bstrdup(b, rc->u.call.name);
  a.text = node_text(b, rc);
  const zql_list_t *args = &rc->u.call.args;
  const char *name = rc->u.call.name;
  a.nondet = rc->u.call.func && (rc->u.call.func->flags & ZQL_FN_NONDET);
  if (strcmp(name, "quantile") == 0) {
    a.compression = 100;
    if (args->n > 0)
      const_num_of(b, args->items[0], &a.q);
    if (args->n > 1)
      const_num_of(b, args->items[1], &a.compression);
  } else if (strcmp(name, "median") == 0) {
    a.func = "quantile";
    a.q = 0.5;
    a.compression = 100;
  } else if (args->n > 0) {
    a.has_n = const_int_of(b, args->items[0], &a.n);
  }
  a.has_weight = strcmp(name, "maximum") == 0 || strcmp(name, "minimum") == 0 ||
                 strcmp(name, "topk") == 0;
  t->aggs = balloc(b, sizeof *t->aggs);
  if (b->err)
    return 0;
  t->aggs[0] = a;
  t->naggs = 1;
  return p->ntables++;
}

static void emit_stmt(builder_t *b, const zql_node_t *e)
{
  uint32_t ti = table_index(b, e->u.emit.decl);
  if (b->err)
    return;
  zql_ptable_t *t = &b->p->tables[ti];
  uint32_t nidx = e->u.emit.index.n;
  uint32_t skips[80];
  uint32_t nskips = 0;
  uint16_t base = newreg(b, (uint16_t)(nidx + 2));
  for (uint32_t i = 0; i < nidx && !b->err; i++) {
    uint16_t r = expr(b, e->u.emit.index.items[i]);
    if (nskips < ZQL_ARRAY_LEN(skips))
      skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, r, 0, 0);
    emit(b, ZQL_I_MOVE, 0, base + i, r, 0, 0);
  }
  uint16_t v = expr(b, e->u.emit.value);
  skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, v, 0, 0);
  emit(b, ZQL_I_MOVE, 0, base + nidx, v, 0, 0);
  if (e->u.emit.weight) {
    uint16_t w = expr(b, e->u.emit.weight);
    skips[nskips++] = emit(b, ZQL_I_CHKERR, 0, 0, w, 0, 0);
    emit(b, ZQL_I_MOVE, 0, base + nidx + 1, w, 0, 0);
  } else { /* no weight: every emit weighs 1 */
    emit(b, ZQL_I_LOADK, 0, base + nidx + 1, 0, 0, const_int(b, 1));
  }
  emit(b, ZQL_I_EMIT, t->aggs[0].has_weight ? 1 : 0, 0, base, nidx, ti);
  for (uint32_t i = 0; i < nskips; i++)
    patch_to(b, skips[i], here(b));
}

static void map_stmt(builder_t *b, const zql_node_t *s)
{
  switch (s->kind) {
  case ZQL_N_LET: {
    uint16_t r = expr(b, s->u.decl.value);
    bind(b, s, r, -1);
    break;
  }
  case ZQL_N_IF:
  case ZQL_N_WHEN: {
    uint16_t c = expr(b, s->u.cond_stmt.cond);
    uint32_t j = emit(b, ZQL_I_JNT, 0, 0, c, 0, 0);
    map_block(b, s->u.cond_stmt.then);
    if (s->u.cond_stmt.else_) {
      uint32_t over = emit(b, ZQL_I_JMP, 0, 0, 0, 0, 0);
      patch_to(b, j, here(b));
      if (s->u.cond_stmt.else_->kind == ZQL_N_BLOCK)
        map_block(b, s->u.cond_stmt.else_);
      else
        map_stmt(b, s->u.cond_stmt.else_);
      patch_to(b, over, here(b));
    } else {
      patch_to(b, j, here(b));
    }
    break;
  }
  case ZQL_N_FOR: {
    uint16_t arr = expr(b, s->u.for_stmt.iter);
    uint16_t it = newreg(b, 1);
    uint16_t x = newreg(b, 1);
    uint32_t init = emit(b, ZQL_I_ITER, 0, it, arr, 0, 0);
    uint32_t loop = emit(b, ZQL_I_NEXT, 0, x, it, 0, 0);
    bind(b, s, x, -1);
    map_block(b, s->u.for_stmt.body);
    emit(b, ZQL_I_JMP, 0, 0, 0, 0, loop);
    patch_to(b, init, here(b));
    patch_to(b, loop, here(b));
    break;
  }
  case ZQL_N_EMIT:
    emit_stmt(b, s);
    break;
  case ZQL_N_BLOCK:
    map_block(b, s);
    break;
  default:
    fail(b, ZQL_E_INTERNAL, "planner: map statement %s", zql_node_kind_name(s->kind));
  }
}

static void map_block(builder_t *b, const zql_node_t *blk)
{
  for (uint32_t i = 0; i < blk->u.list.n && !b->err; i++)
    map_stmt(b, blk->u.list.items[i]);
}

static void build_mapform(builder_t *b, const zql_node_t *s, zql_plnode_t ***tail)
{
  zql_plan_t *p = b->p;
  map_block(b, s->u.query.map);
  finish_map(b);
  if (b->err)
    return;
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  for (uint32_t i = 0; i < p->ntables && !b->err; i++) {
    zql_ptable_t *t = &p->tables[i];
    zql_strbuf_addf(&sb, "%s%s: %s", i ? ", " : "", t->name, t->aggs[0].text);
    p->nondet |= t->aggs[0].nondet;
    /* final: index fields, then value */
    b->prog = &t->final;
    t->ncols = t->nkeys + 1;
    t->cols = balloc(b, t->ncols * sizeof *t->cols);
    if (b->err)
      break;
    /* the index field names come from the table declaration */
    for (uint32_t k = 0; k < t->nkeys; k++) {
      uint16_t r = newreg(b, 1);
      emit(b, ZQL_I_KEY, 0, r, 0, 0, k);
      t->cols[k] = (zql_pcol_t){NULL, r, true, -1};
    }
    uint16_t r = newreg(b, 1);
    emit(b, ZQL_I_FINAL, 0, r, 0, 0, 0);
    t->cols[t->nkeys] = (zql_pcol_t){"value", r, false, 0};
    emit(b, ZQL_I_HALT, 0, 0, 0, 0, 0);
  }
  b->prog = &p->map;
  zql_plnode_t *l = lnode(b, tail, "Emit", zql_arena_strndup(b->a, sb.buf, sb.len));
  if (l)
    l->mark = p->nondet ? "[mergeable; topk/sample depend on the split]" : "[all mergeable]";
  zql_strbuf_release(&sb);
}

/* Column names of map-form tables: the declarations' field names. */
static void name_table_cols(builder_t *b, const zql_node_t *blk);

static void name_cols_cb(zql_node_t *child, void *arg)
{
  builder_t *b = arg;
  if (child->kind == ZQL_N_EMIT) {
    const zql_node_t *decl = child->u.emit.decl;
    for (uint32_t i = 0; i < b->p->ntables; i++) {
      zql_ptable_t *t = &b->p->tables[i];
      if (strcmp(t->name, decl->u.table.name) != 0 || !t->cols || t->cols[0].name)
        continue;
      for (uint32_t k = 0; k < t->nkeys; k++)
        t->cols[k].name = bstrdup(b, decl->u.table.fields.items[k]->u.field.name);
    }
    return;
  }
  name_table_cols(b, child);
}

static void name_table_cols(builder_t *b, const zql_node_t *n)
{
  if (n)
    zql_node_children((zql_node_t *)n, name_cols_cb, b);
}

static void options(builder_t *b, const zql_node_t *s)
{
  zql_plan_t *p = b->p;
  const zql_list_t *opts = &s->u.query.options;
  const char *into = NULL;
  for (uint32_t i = 0; i < opts->n; i++) {
    const zql_node_t *o = opts->items[i];
    switch (o->u.option.opt) {
    case ZQL_OPT_INTO: into = o->u.option.str; break;
    case ZQL_OPT_KEY:
      p->key_template = bstrdup(b, o->u.option.str);
      p->key_doc = o->u.option.key_doc;
      break;
    case ZQL_OPT_MODE: p->mode = bstrdup(b, o->u.option.ident); break;
    case ZQL_OPT_ON_ERROR: p->strict = o->u.option.ident && strcmp(o->u.option.ident, "fail") == 0; break;
    case ZQL_OPT_LATENESS:
      const_int_of(b, o->u.option.value, &p->lateness_ms);
      if (o->u.option.ident)
        p->late = bstrdup(b, o->u.option.ident);
      if (o->u.option.str)
        p->sidecar = bstrdup(b, o->u.option.str);
      break;
    case ZQL_OPT_SETTLE: const_int_of(b, o->u.option.value, &p->settle_ms); break;
    case ZQL_OPT_RETAIN: const_int_of(b, o->u.option.value, &p->retain_ms); break;
    case ZQL_OPT_SCHEDULE: {
      p->schedule = span_text(b, o->span);
      /* `every $w`: the daemon cannot see params, so the plan carries the value */
      int64_t ms;
      if (p->schedule && strchr(p->schedule, '$') && o->u.option.sched == ZQL_SCHED_EVERY &&
          const_int_of(b, o->u.option.value, &ms) && ms > 0) {
        char buf[64];
        snprintf(buf, sizeof buf, "schedule every %" PRId64 "ms", ms);
        p->schedule = bstrdup(b, buf);
      }
      break;
    }
    case ZQL_OPT_PARTITIONS: {
      int64_t v;
      if (const_int_of(b, o->u.option.value, &v) && v >= 1 && v <= 4096)
        p->partitions = (uint32_t)v;
      break;
    }
    default: break;
    }
  }
  if (!p->mode)
    p->mode = "reduce";
  /* the output collections (the default into of ZQL.md's resolved design) */
  for (uint32_t i = 0; i < p->ntables && !b->err; i++) {
    zql_ptable_t *t = &p->tables[i];
    const char *base = into ? into : zql_arena_printf(b->a, "zagg.%s%s", p->name,
                                                      p->ntables > 1 || t->name ? ".{table}" : "");
    if (t->name) {
      const char *at = strstr(base, "{table}");
      t->into = at ? zql_arena_printf(b->a, "%.*s%s%s", (int)(at - base), base, t->name, at + 7)
                   : bstrdup(b, base);
    } else {
      t->into = bstrdup(b, base);
    }
  }
}

void zql_plan_opts_init(zql_plan_opts_t *o)
{
  memset(o, 0, sizeof *o);
  o->partitions = 8;
}

static void plan_release_consts(void *arg)
{
  zql_plan_t *p = arg;
  bson_destroy(p->consts);
}

zql_plan_t *zql_plan_new_empty(void)
{
  zql_arena_t *a = zql_arena_create(NULL);
  if (!a)
    return NULL;
  zql_plan_t *p = zql_arena_calloc(a, 1, sizeof *p);
  if (!p) {
    zql_arena_delete(a);
    return NULL;
  }
  p->arena = a;
  p->format = ZQL_PLAN_FORMAT;
  /* on the heap, not inside the arena-allocated plan: libbson declares bson_t with
   * 128-byte alignment, which arena blocks do not have */
  p->consts = bson_new();
  if (zql_arena_on_cleanup(a, plan_release_consts, p) != 0) {
    bson_destroy(p->consts);
    zql_arena_delete(a);
    return NULL;
  }
  p->seq_lo = INT64_MIN;
  p->seq_hi = INT64_MAX;
  p->seq_reg = -1;
  p->limit = -1;
  p->offset = -1;
  p->partitions = 8;
  p->late = "merge";
  p->retain_ms = -1;
  return p;
}

void zql_plan_free(zql_plan_t *p)
{
  if (p)
    zql_arena_delete(p->arena);
}

int zql_plan_build(const zql_source_t *src, const zql_node_t *stmt,
                   const zql_plan_opts_t *opts, zql_plan_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  zql_plan_opts_t dflt;
  if (!opts) {
    zql_plan_opts_init(&dflt);
    opts = &dflt;
  }
  zql_plan_t *p = zql_plan_new_empty();
  if (!p) {
    if (err)
      zql_strbuf_adds(err, "out of memory while planning");
    return ZQL_E_NOMEM;
  }
  builder_t b = {0};
  b.p = p;
  b.a = p->arena;
  b.src = src;
  b.msg = err;
  b.prog = &p->map;
  b.skip_target = UINT32_MAX;
  p->partitions = opts->partitions ? opts->partitions : 8;
  p->incremental = b.incremental = opts->incremental;
  p->is_query = stmt->kind == ZQL_N_QUERY;
  p->name = bstrdup(&b, stmt->kind == ZQL_N_AGGREGATE ? stmt->u.query.name : "query");
  if (src)
    p->source_hash = XXH3_64bits(src->text, src->len);

  const zql_list_t *srcs = &stmt->u.query.sources;
  if (srcs->n != 1)
    fail(&b, ZQL_E_UNSUPPORTED, "several sources are not supported by this version of the "
         "engine");
  else if (srcs->items[0]->u.source.is_agg)
    p->source_agg = bstrdup(&b, srcs->items[0]->u.source.name);

  zql_plnode_t *root = NULL, **tail = &root;
  zql_plnode_t *scan = b.err ? NULL : lnode(&b, &tail, "Scan", NULL);
  if (!b.err) {
    rowops(&b, &stmt->u.query.rowops, &tail);
    if (stmt->u.query.map)
      build_mapform(&b, stmt, &tail);
    else if (!stmt->u.query.grouped && !stmt->u.query.has_compute)
      build_rowq(&b, stmt, &tail);
    else
      build_grouped(&b, stmt, &tail);
  }
  if (!b.err && stmt->u.query.map)
    name_table_cols(&b, stmt->u.query.map);
  if (!b.err) {
    int64_t v;
    if (stmt->u.query.limit && const_int_of(&b, stmt->u.query.limit, &v))
      p->limit = v;
    if (stmt->u.query.offset && const_int_of(&b, stmt->u.query.offset, &v))
      p->offset = v;
    if (p->limit >= 0 || p->offset >= 0)
      lnode(&b, &tail, "Limit",
            p->offset > 0 ? zql_arena_printf(b.a, "%" PRId64 " offset %" PRId64, p->limit,
                                             p->offset)
                          : zql_arena_printf(b.a, "%" PRId64, p->limit));
    options(&b, stmt);
  }
  if (scan && !b.err) {
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    scan_text(&b, &sb);
    scan->text = zql_arena_strndup(b.a, sb.buf, sb.len);
    zql_strbuf_release(&sb);
  }
  p->logical = root;
  if (p->pre.n) /* the pre-pass runs over the map program's register file */
    p->pre.nregs = p->map.nregs;
  if (b.err) {
    int e = b.err;
    zql_plan_free(p);
    return e;
  }
  *out = p;
  return 0;
}

/* }==== */
