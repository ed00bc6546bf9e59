/*
 * rows_input.c -- the rows of a result as an executor input (stage 4, `from agg` chains).
 *
 * Pipeline position: `zql run` runs the aggregates of a file in dependency order; an
 * aggregate reading `from agg X` gets X's result rows through this input, as documents
 * {column: final value..., __state: {column: saved state}}: the planner compiles a column
 * reference as a path into that document and merge(col) as a read of __state.col
 * (planner/build.c, exec/agg_merge.c). When the results store lands, the same documents
 * come from the store instead (R16 keeps `value` and `state` side by side).
 *
 * Row i has _seq i + 1 and timestamp 0; split cuts the row range evenly. The documents are
 * built once, when the input is created, into one buffer owned by the input; the input
 * functions serve any such buffer (zql_rowbuf_input: runtime/store_input.c uses them for
 * the stored documents).
 */
#include "runtime/base/zql_common.h"

#include "exec/zql_exec.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

struct zql_rows_input {
  zql_rowbuf_t rb;     /* owned: buf and off */
};

typedef struct cur {
  const zql_rowbuf_t *rb;
  uint64_t next, end;  /* row indexes [next, end) */
} cur_t;

static int rb_split(void *arg, int64_t lo, int64_t hi, size_t n, int64_t *bounds,
                    zql_strbuf_t *err)
{
  (void)arg;
  (void)err;
  if (hi <= lo || n == 0)
    return 0;
  uint64_t span = (uint64_t)(hi - lo);
  if (n > span)
    n = span;
  for (size_t i = 0; i <= n; i++)
    bounds[i] = lo + (int64_t)(span * i / n);
  return (int)n;
}

static int rb_open(void *arg, int64_t lo, int64_t hi, int64_t ts_lo, int64_t ts_hi,
                   void **out, zql_strbuf_t *err)
{
  const zql_rowbuf_t *rb = arg;
  cur_t *c = zql_calloc(1, sizeof *c);
  if (!c) {
    zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  c->rb = rb;
  /* (lo, hi] in _seq = row index + 1; rows have timestamp 0 */
  c->next = lo < 0 ? 0 : (uint64_t)lo > rb->nrows ? rb->nrows : (uint64_t)lo;
  c->end = hi < 0 ? 0 : (uint64_t)hi > rb->nrows ? rb->nrows : (uint64_t)hi;
  if (c->next > c->end || !(ts_lo <= 0 && 0 < ts_hi))
    c->next = c->end; /* a time range that excludes 0 excludes every row */
  *out = c;
  return 0;
}

static int rb_next(void *cursor, zql_event_t *ev, size_t max, zql_strbuf_t *err)
{
  (void)err;
  cur_t *c = cursor;
  size_t n = 0;
  while (n < max && c->next < c->end) {
    uint64_t i = c->next++;
    ev[n].seq = (int64_t)i + 1;
    ev[n].ts = 0;
    ev[n].doc = c->rb->buf + c->rb->off[i];
    ev[n].len = (uint32_t)(c->rb->off[i + 1] - c->rb->off[i]);
    n++;
  }
  return (int)n;
}

static void rb_close(void *cursor)
{
  zql_free(cursor);
}

void zql_rowbuf_input(const zql_rowbuf_t *rb, zql_input_t *in)
{
  memset(in, 0, sizeof *in);
  in->arg = (void *)(uintptr_t)rb;
  in->lo = 0;
  in->hi = (int64_t)rb->nrows;
  in->split = rb_split;
  in->open = rb_open;
  in->next = rb_next;
  in->close = rb_close;
  in->bytes = rb->off[rb->nrows];
}

int zql_rows_input_new(const zql_result_table_t *t, zql_input_t *in, zql_rows_input_t **out)
{
  *out = NULL;
  zql_rows_input_t *ri = zql_calloc(1, sizeof *ri);
  if (!ri)
    return ZQL_E_NOMEM;
  uint64_t *off = zql_calloc(t->nrows + 1, sizeof *off);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  int rc = off ? 0 : ZQL_E_NOMEM;
  for (uint64_t i = 0; i < t->nrows && !rc; i++) {
    bson_t d = BSON_INITIALIZER;
    const zql_val_t *v = &t->vals[i * t->ncols];
    for (uint32_t c = 0; c < t->ncols; c++)
      if (t->names[c] && !zql_val_append_bson(&d, t->names[c], -1, &v[c]))
        rc = ZQL_E_TOO_LARGE;
    if (t->state && t->state[i].t == ZQL_V_DOC && !rc) {
      bson_t st;
      if (!bson_init_static(&st, t->state[i].u.p, t->state[i].len) ||
          !bson_append_document(&d, "__state", 7, &st))
        rc = ZQL_E_TOO_LARGE;
    }
    off[i] = sb.len;
    zql_strbuf_add(&sb, bson_get_data(&d), d.len);
    bson_destroy(&d);
    if (sb.oom)
      rc = ZQL_E_NOMEM;
  }
  if (rc) {
    zql_strbuf_release(&sb);
    zql_free(off);
    zql_free(ri);
    return rc;
  }
  off[t->nrows] = sb.len;
  ri->rb.off = off;
  ri->rb.nrows = t->nrows;
  ri->rb.buf = (uint8_t *)zql_strbuf_detach(&sb, NULL);
  zql_rowbuf_input(&ri->rb, in);
  *out = ri;
  return 0;
}

void zql_rows_input_free(zql_rows_input_t *ri)
{
  if (!ri)
    return;
  zql_free(ri->rb.buf);
  zql_free(ri->rb.off);
  zql_free(ri);
}
