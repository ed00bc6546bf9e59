#include "runtime/base/zql_common.h"
/*
 * evmatch.c -- the `on event <predicate>` filter of zqld's scheduler (runtime services,
 * design/ZQL.md R18).
 *
 * The predicate of `schedule on event type == "download"` is compiled once, through the
 * ordinary pipeline (parse, analyze, plan), as the query
 *
 *     from event where (PREDICATE) compute n = count()
 *
 * and run by the engine over each batch of events the log writer appended (an input over
 * an array of documents, one chunk, one thread). So the predicate means exactly what it
 * means in a `where`: the same functions, types, null and error rules (R1-R5). A
 * predicate that fails to compile is reported with its line and column in the aggregate's
 * schedule text. `on event` without a predicate matches every event and needs no engine.
 */

#include "runtime/evmatch.h"

#include "exec/zql_exec.h"
#include "parser/zql_parse.h"
#include "planner/zql_plan.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"

struct zql_evmatch {
  zql_plan_t *plan;
  zql_xplan_t *x;
};

/* The input: the events of one batch, _seq 1..n. */
typedef struct batch {
  const zql_event_t *ev;
  size_t n;
} batch_t;

typedef struct bcur {
  const batch_t *b;
  size_t i, end;
} bcur_t;

static int b_split(void *arg, int64_t lo, int64_t hi, size_t n, int64_t *bounds,
                   zql_strbuf_t *err)
{
  (void)arg;
  (void)err;
  if (hi <= lo || n == 0)
    return 0;
  bounds[0] = lo;
  bounds[1] = hi;
  return 1;
}

static int b_open(void *arg, int64_t lo, int64_t hi, int64_t ts_lo, int64_t ts_hi,
                  void **cursor, zql_strbuf_t *err)
{
  (void)ts_lo;
  (void)ts_hi;
  (void)err;
  bcur_t *c = zql_calloc(1, sizeof *c);
  if (!c)
    return ZQL_E_NOMEM;
  c->b = arg;
  c->i = lo < 0 ? 0 : (size_t)lo;
  c->end = (size_t)hi < c->b->n ? (size_t)hi : c->b->n;
  *cursor = c;
  return 0;
}

static int b_next(void *cursor, zql_event_t *ev, size_t max, zql_strbuf_t *err)
{
  (void)err;
  bcur_t *c = cursor;
  size_t k = 0;
  while (k < max && c->i < c->end) {
    ev[k] = c->b->ev[c->i];
    ev[k].seq = (int64_t)c->i + 1; /* positions: the engine wants ascending _seq */
    k++;
    c->i++;
  }
  return (int)k;
}

static void b_close(void *cursor)
{
  zql_free(cursor);
}

int zql_evmatch_new(const char *pred, zql_evmatch_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  zql_evmatch_t *m = zql_calloc(1, sizeof *m);
  if (!m)
    return ZQL_E_NOMEM;
  if (!pred || !*pred) { /* every event matches */
    *out = m;
    return 0;
  }
  static const char head[] = "from event where (";
  zql_strbuf_t text = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&text, head);
  zql_strbuf_adds(&text, pred);
  zql_strbuf_adds(&text, ") compute n = count();\n");
  zql_arena_t *arena = zql_arena_create(NULL);
  zql_diags_t d;
  zql_diags_init(&d, arena);
  zql_source_t src;
  zql_node_t *file = NULL;
  int rc = text.oom || !arena ? ZQL_E_NOMEM : 0;
  if (!rc)
    rc = zql_source_init(&src, arena, "on event", text.buf, text.len);
  if (!rc && (rc = zql_parse(arena, &src, &d, &file)) == 0)
    rc = zql_analyze(arena, &file, 1, &d);
  if (!rc && d.nerr)
    rc = ZQL_E_SYNTAX;
  if (rc && d.n) {
    /* the first error, at its column in the predicate */
    zql_diags_sort(&d);
    const zql_error_t *e = &d.items[0];
    uint32_t line, col;
    zql_source_linecol(&src, e->span.start, &line, &col);
    long at = (long)col - (long)(sizeof head - 1);
    zql_strbuf_addf(err, "on event predicate `%s`: column %ld: %s [%s]", pred,
                    at > 0 ? at : 1, e->message, zql_err_code_str(e->code));
  }
  if (!rc) {
    zql_plan_opts_t po;
    zql_plan_opts_init(&po);
    zql_strbuf_t perr = ZQL_STRBUF_INIT;
    rc = zql_plan_build(&src, file->u.list.items[0], &po, &m->plan, &perr);
    if (rc)
      zql_strbuf_addf(err, "on event predicate `%s`: %s", pred,
                      perr.len ? perr.buf : zql_strerror(rc));
    zql_strbuf_release(&perr);
  }
  if (!rc && (rc = zql_xplan_prepare(m->plan, 0, &m->x, err)) != 0)
    zql_strbuf_addf(err, " (on event predicate `%s`)", pred);
  zql_diags_release(&d);
  zql_arena_delete(arena);
  zql_strbuf_release(&text);
  if (rc) {
    zql_evmatch_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int zql_evmatch_count(zql_evmatch_t *m, const zql_event_t *ev, size_t n, uint64_t *matched,
                      zql_strbuf_t *err)
{
  *matched = 0;
  if (!m->x) {
    *matched = n;
    return 0;
  }
  if (n == 0)
    return 0;
  batch_t b = {ev, n};
  zql_input_t in = {&b, 0, (int64_t)n, b_split, b_open, b_next, b_close, 0};
  zql_run_opts_t ro;
  zql_run_opts_init(&ro);
  ro.threads = 1;
  zql_result_t *res = NULL;
  int rc = zql_exec_run(m->x, &in, &ro, &res, err);
  if (rc)
    return rc;
  if (res->ntables && res->tables[0].nrows && res->tables[0].ncols &&
      res->tables[0].vals[0].t == ZQL_V_INT)
    *matched = (uint64_t)res->tables[0].vals[0].u.i;
  zql_result_free(res);
  return 0;
}

void zql_evmatch_free(zql_evmatch_t *m)
{
  if (!m)
    return;
  zql_xplan_free(m->x);
  zql_plan_free(m->plan);
  zql_free(m);
}
