/*
 * source.c -- source texts, line maps and diagnostic rendering (stage 1 support).
 *
 * Pipeline position: used by the scanner (spans), parser and analyzer (errors), and by
 * every CLI that prints a zql_error_t. See source.h for the output format.
 *
 * Line map: line_starts[i] is the byte offset of line i+1, found with one pass over the
 * text for '\n'; an offset maps to its line by binary search. Columns are counted as
 * UTF-8 code points (continuation bytes 10xxxxxx do not start a column), so a caret
 * under "naïve" lines up in a UTF-8 terminal. The caret line copies tabs from the source
 * line so it aligns whatever the tab width.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>

#include "parser/source.h"
#include "runtime/base/alloc.h"

#define WINDOW 120 /* widest source excerpt we print */

int zql_source_init(zql_source_t *src, zql_arena_t *arena, const char *name,
                    const char *text, size_t len)
{
  memset(src, 0, sizeof *src);
  if (len > ZQL_SOURCE_MAX)
    return ZQL_E_TOO_LARGE;
  char *copy = zql_arena_strndup(arena, text, len);
  src->name = zql_arena_strdup(arena, name);
  if (!copy || !src->name)
    return ZQL_E_NOMEM;
  uint32_t n = 1;
  for (size_t i = 0; i < len; i++)
    if (copy[i] == '\n')
      n++;
  src->line_starts = zql_arena_calloc(arena, n, sizeof(uint32_t));
  if (!src->line_starts)
    return ZQL_E_NOMEM;
  uint32_t k = 1;
  for (size_t i = 0; i < len; i++)
    if (copy[i] == '\n')
      src->line_starts[k++] = (uint32_t)(i + 1);
  src->text = copy;
  src->len = (uint32_t)len;
  src->nlines = n;
  return 0;
}

int zql_source_read_file(zql_source_t *src, zql_arena_t *arena, const char *path,
                         zql_strbuf_t *err)
{
  bool is_stdin = strcmp(path, "-") == 0;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    zql_strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
    return ZQL_E_IO;
  }
  zql_strbuf_t buf = ZQL_STRBUF_INIT;
  char chunk[65536];
  size_t got;
  int rc = 0;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (buf.len + got > ZQL_SOURCE_MAX) {
      zql_strbuf_addf(err, "'%s' is larger than %u MiB", path, ZQL_SOURCE_MAX >> 20);
      rc = ZQL_E_TOO_LARGE;
      break;
    }
    zql_strbuf_add(&buf, chunk, got);
  }
  if (!rc && ferror(f)) {
    zql_strbuf_addf(err, "cannot read '%s': %s", path, strerror(errno));
    rc = ZQL_E_IO;
  }
  if (!is_stdin)
    fclose(f);
  if (!rc && buf.oom)
    rc = ZQL_E_NOMEM;
  if (!rc)
    rc = zql_source_init(src, arena, is_stdin ? "<stdin>" : path, buf.buf, buf.len);
  zql_strbuf_release(&buf);
  return rc;
}

static uint32_t line_index(const zql_source_t *src, uint32_t off)
{
  uint32_t lo = 0, hi = src->nlines; /* answer in [lo, hi) */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (src->line_starts[mid] <= off)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

static bool is_cont(unsigned char c)
{
  return (c & 0xC0) == 0x80;
}

static uint32_t count_cols(const char *s, uint32_t from, uint32_t to)
{
  uint32_t n = 0;
  for (uint32_t i = from; i < to; i++)
    if (!is_cont((unsigned char)s[i]))
      n++;
  return n;
}

void zql_source_linecol(const zql_source_t *src, uint32_t off, uint32_t *line,
                        uint32_t *col)
{
  if (off > src->len)
    off = src->len;
  uint32_t li = line_index(src, off);
  *line = li + 1;
  *col = count_cols(src->text, src->line_starts[li], off) + 1;
}

static uint32_t line_end(const zql_source_t *src, uint32_t li)
{
  uint32_t e = li + 1 < src->nlines ? src->line_starts[li + 1] - 1 : src->len;
  if (e > src->line_starts[li] && src->text[e - 1] == '\r')
    e--;
  return e;
}

/* Advance from byte `p` over `ncols` code points, not past `end`. */
static uint32_t skip_cols(const char *s, uint32_t p, uint32_t end, uint32_t ncols)
{
  while (p < end && ncols > 0) {
    p++;
    while (p < end && is_cont((unsigned char)s[p]))
      p++;
    ncols--;
  }
  return p;
}

/* Append source bytes [from, to), replacing control characters (not tab) and NUL by '?'
 * so the excerpt can never mess up the terminal. */
static void add_excerpt(zql_strbuf_t *out, const char *s, uint32_t from, uint32_t to)
{
  for (uint32_t i = from; i < to; i++) {
    unsigned char c = (unsigned char)s[i];
    zql_strbuf_addc(out, (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c);
  }
}

void zql_diag_render(zql_strbuf_t *out, const zql_error_t *e, bool color)
{
  const char *sev = e->severity == ZQL_SEV_ERROR     ? "error"
                    : e->severity == ZQL_SEV_WARNING ? "warning"
                                                     : "note";
  const char *sevcol = e->severity == ZQL_SEV_ERROR ? "\033[1;31m" : "\033[1;35m";
  const char *bold = color ? "\033[1m" : "";
  const char *reset = color ? "\033[0m" : "";
  const zql_source_t *src = e->source;
  uint32_t line = 0, col = 0;
  if (src) {
    zql_source_linecol(src, e->span.start, &line, &col);
    zql_strbuf_addf(out, "%s%s:%u:%u:%s ", bold, src->name, line, col, reset);
  }
  zql_strbuf_addf(out, "%s%s:%s %s [%s]\n", color ? sevcol : "", sev, reset, e->message,
                  zql_err_code_str(e->code));
  if (src && src->len > 0) {
    uint32_t li = line - 1;
    uint32_t ls = src->line_starts[li], le = line_end(src, li);
    uint32_t start = e->span.start < ls ? ls : (e->span.start > le ? le : e->span.start);
    uint32_t end = e->span.end > le ? le : e->span.end;
    if (end < start)
      end = start;
    /* window of at most WINDOW columns around the caret */
    uint32_t linecols = count_cols(src->text, ls, le);
    uint32_t ccol = col - 1; /* 0-based caret column */
    uint32_t wfirst = 0;
    if (linecols > WINDOW && ccol > WINDOW / 2)
      wfirst = ccol - WINDOW / 2;
    uint32_t ws = skip_cols(src->text, ls, le, wfirst);
    uint32_t we = skip_cols(src->text, ws, le, WINDOW);
    const char *lead = ws > ls ? "..." : "";
    const char *trail = we < le ? "..." : "";
    char gutter[16];
    int gw = snprintf(gutter, sizeof gutter, "%u", line);
    zql_strbuf_addf(out, " %s |  %s", gutter, lead);
    add_excerpt(out, src->text, ws, we);
    zql_strbuf_addf(out, "%s\n", trail);
    zql_strbuf_addc(out, ' ');
    zql_strbuf_addchars(out, ' ', (size_t)gw);
    zql_strbuf_adds(out, " |  ");
    zql_strbuf_adds(out, lead);
    for (uint32_t p = ws; p < start;) {
      zql_strbuf_addc(out, src->text[p] == '\t' ? '\t' : ' ');
      p = skip_cols(src->text, p, start, 1);
    }
    zql_strbuf_adds(out, color ? sevcol : "");
    zql_strbuf_addc(out, '^');
    uint32_t ucols = end > start ? count_cols(src->text, start, end > we ? we : end) : 1;
    if (ucols > 1)
      zql_strbuf_addchars(out, '~', ucols - 1);
    zql_strbuf_adds(out, reset);
    zql_strbuf_addc(out, '\n');
  }
  if (e->hint)
    zql_strbuf_addf(out, "%shint:%s %s\n", color ? "\033[1;36m" : "", reset, e->hint);
}

void zql_diags_render(zql_strbuf_t *out, const zql_diags_t *d, bool color)
{
  for (size_t i = 0; i < d->n; i++)
    zql_diag_render(out, &d->items[i], color);
  int max = d->max_errors > 0 ? d->max_errors : 50;
  if (d->nerr > max)
    zql_strbuf_addf(out, "error: too many errors, %d more not shown [%s]\n", d->nerr - max,
                    zql_err_code_str(ZQL_E_TOO_MANY_ERRORS));
}

static uint32_t source_order(const zql_error_t *e)
{
  return e->source ? e->source->order + 1 : 0;
}

void zql_diags_sort(zql_diags_t *d)
{
  /* insertion sort: stable, and lists are short (errors are capped per run) */
  for (size_t i = 1; i < d->n; i++) {
    zql_error_t x = d->items[i];
    uint32_t xo = source_order(&x);
    size_t j = i;
    while (j > 0) {
      const zql_error_t *p = &d->items[j - 1];
      uint32_t po = source_order(p);
      if (po < xo || (po == xo && p->span.start <= x.span.start))
        break;
      d->items[j] = *p;
      j--;
    }
    d->items[j] = x;
  }
}
