/*
 * error.c -- the error-code table and the diagnostic list (layer 0). See error.h.
 *
 * The table is expanded from the generated errcodes.h; lookups are linear over ~60
 * entries and happen only when an error is reported.
 */
#include "runtime/base/zql_common.h"

#include <stdarg.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

typedef struct {
  int code;
  const char *name;
  const char *str; /* "E3001" */
  const char *cls;
  const char *msg;
} errdef_t;

static const errdef_t errtab[] = {
#define ZQL_ERRCODE(num, name, str, cls, msg) {-(num), #name, str, cls, msg},
#include "runtime/base/errcodes.h"
#undef ZQL_ERRCODE
};

static const errdef_t *find(int code)
{
  for (size_t i = 0; i < ZQL_ARRAY_LEN(errtab); i++)
    if (errtab[i].code == code)
      return &errtab[i];
  return NULL;
}

const char *zql_err_code_str(int code)
{
  const errdef_t *e = find(code);
  return e ? e->str : "E????";
}

const char *zql_err_name(int code)
{
  const errdef_t *e = find(code);
  /* skip the ZQL_E_ / ZQL_W_ prefix */
  return e ? e->name + 6 : NULL;
}

const char *zql_strerror(int code)
{
  const errdef_t *e = find(code);
  return e ? e->msg : "unknown error";
}

const char *zql_err_class(int code)
{
  const errdef_t *e = find(code);
  return e ? e->cls : "runtime";
}

void zql_err_foreach(void (*fn)(int code, void *arg), void *arg)
{
  for (size_t i = 0; i < ZQL_ARRAY_LEN(errtab); i++)
    fn(errtab[i].code, arg);
}

void zql_diags_init(zql_diags_t *d, zql_arena_t *arena)
{
  memset(d, 0, sizeof *d);
  d->arena = arena;
}

void zql_diags_release(zql_diags_t *d)
{
  zql_free(d->items);
  d->items = NULL;
  d->n = d->cap = 0;
}

zql_error_t *zql_diag_add(zql_diags_t *d, const struct zql_source *src, int code,
                          zql_span_t span, const char *fmt, ...)
{
  const errdef_t *def = find(code);
  bool warning = def && strcmp(def->cls, "warning") == 0;
  int max = d->max_errors > 0 ? d->max_errors : 50;
  if (warning) {
    d->nwarn++;
  } else {
    d->nerr++;
    if (d->nerr > max)
      return NULL;
  }
  if (d->n == d->cap) {
    size_t ncap = d->cap ? d->cap * 2 : 16;
    zql_error_t *p = zql_reallocarray(d->items, ncap, sizeof *p);
    if (!p) {
      d->oom = true;
      return NULL;
    }
    d->items = p;
    d->cap = ncap;
  }
  va_list ap;
  va_start(ap, fmt);
  char *msg = zql_arena_vprintf(d->arena, fmt, ap);
  va_end(ap);
  if (!msg) {
    d->oom = true;
    return NULL;
  }
  zql_error_t *e = &d->items[d->n++];
  e->code = code;
  e->severity = warning ? ZQL_SEV_WARNING : ZQL_SEV_ERROR;
  e->message = msg;
  e->hint = NULL;
  e->span = span;
  e->source = src;
  return e;
}

void zql_diag_hint(zql_diags_t *d, zql_error_t *e, const char *fmt, ...)
{
  if (!e)
    return;
  va_list ap;
  va_start(ap, fmt);
  char *h = zql_arena_vprintf(d->arena, fmt, ap);
  va_end(ap);
  if (!h) {
    d->oom = true;
    return;
  }
  e->hint = h;
}

int zql_fail(zql_strbuf_t *err, int code, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    zql_strbuf_vaddf(err, fmt, ap);
    va_end(ap);
  }
  return code;
}
