/*
 * evlog_input.c -- the event log as an executor input (runtime services -> stage 4).
 *
 * See evlog_input.h. Each chunk gets its own cursor (cursors belong to one thread), which
 * reads its records with pread into a window of its own (zql_evlog_cursor_use_pread: the
 * executor reads each record once and is done with a batch's values -- copied into states
 * or rows -- when it asks for the next batch); next() converts the cursor's views into
 * zql_event_t without copying the documents again.
 */
#include "runtime/base/zql_common.h"

#include "runtime/evlog_input.h"

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

typedef struct cursor {
  zql_evlog_cursor_t *c;
  zql_evlog_view_t views[256];
} cursor_t;

static int in_split(void *arg, int64_t lo, int64_t hi, size_t n, int64_t *bounds,
                    zql_strbuf_t *err)
{
  return zql_evlog_split(arg, lo, hi, n, bounds, err);
}

static int in_open(void *arg, int64_t lo, int64_t hi, int64_t ts_lo, int64_t ts_hi,
                   void **out, zql_strbuf_t *err)
{
  cursor_t *c = zql_calloc(1, sizeof *c);
  if (!c) {
    zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  zql_evlog_range_t range = {lo, hi, ts_lo, ts_hi};
  int rc = zql_evlog_cursor_open(arg, &range, &c->c, err);
  if (rc) {
    zql_free(c);
    return rc;
  }
  zql_evlog_cursor_use_pread(c->c);
  *out = c;
  return 0;
}

static int in_next(void *cur, zql_event_t *ev, size_t max, zql_strbuf_t *err)
{
  cursor_t *c = cur;
  if (max > ZQL_ARRAY_LEN(c->views))
    max = ZQL_ARRAY_LEN(c->views);
  int n = zql_evlog_cursor_next(c->c, c->views, max, err);
  for (int i = 0; i < n; i++)
    ev[i] = (zql_event_t){c->views[i].seq, c->views[i].ts, c->views[i].doc, c->views[i].len};
  return n;
}

static void in_close(void *cur)
{
  cursor_t *c = cur;
  zql_evlog_cursor_close(c->c);
  zql_free(c);
}

void zql_evlog_input(zql_evlog_reader_t *r, zql_input_t *in)
{
  memset(in, 0, sizeof *in);
  in->arg = r;
  in->lo = zql_evlog_reader_first_seq(r) - 1;
  in->hi = zql_evlog_reader_last_seq(r);
  in->split = in_split;
  in->open = in_open;
  in->next = in_next;
  in->close = in_close;
  in->bytes = zql_evlog_reader_bytes(r);
}
