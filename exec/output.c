/*
 * output.c -- result rows as table, CSV, JSON, NDJSON or BSON (stage 4: the last step of
 * an ad-hoc query and of `zql run --dry-run`; the formats are described in output.h).
 *
 * Streaming formats (csv, json, ndjson, bson) render each row into a scratch buffer and
 * write it with one fwrite, so a row is either wholly handed to stdio or not at all. The
 * table format needs every row to size its columns, so it keeps the rendered cell texts
 * (escaped and truncated already) in one byte buffer plus an array of cell records, and
 * writes everything at close: O(total cell bytes) memory, never the values themselves.
 *
 * Errors: the first write error (fwrite short count, ferror, fflush at close) is kept
 * with its errno and returned by every later call, so a caller that only checks close()
 * still learns about it. Out of memory is sticky the same way.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <math.h>

#include "exec/output.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

#define TABLE_MAX_WIDTH 60 /* cells wider than this (code points) are cut */

typedef struct cell {
  size_t off;     /* into w->cellbuf */
  uint32_t len;   /* bytes */
  uint32_t width; /* code points */
  bool right;     /* numbers: right-aligned */
} cell_t;

struct zql_rowwriter {
  zql_fmt_t fmt;
  FILE *out;
  uint32_t ncols;
  char **names;
  uint64_t nrows;
  int rc;           /* sticky ZQL_E_IO / ZQL_E_NOMEM, 0 while fine */
  int io_errno;     /* errno of the first write error */
  zql_strbuf_t buf; /* scratch: the current row's bytes */
  zql_strbuf_t tmp; /* scratch: one cell's text */
  /* table only */
  zql_strbuf_t cellbuf;
  cell_t *cells;    /* nrows * ncols, row-major */
  size_t ncells, capcells;
  uint32_t *widths; /* per column: widest cell or name */
};

static const char *const fmt_names[] = {"table", "csv", "json", "ndjson", "bson"};

int zql_fmt_parse(const char *name, zql_fmt_t *out)
{
  for (size_t i = 0; name && i < ZQL_ARRAY_LEN(fmt_names); i++)
    if (strcmp(name, fmt_names[i]) == 0) {
      *out = (zql_fmt_t)i;
      return 0;
    }
  return ZQL_E_USAGE;
}

const char *zql_fmt_name(zql_fmt_t fmt)
{
  return (unsigned)fmt < ZQL_ARRAY_LEN(fmt_names) ? fmt_names[fmt] : "?";
}

/* {==== cell text ======================================================================= */

void zql_cell_text(zql_strbuf_t *sb, const zql_val_t *v)
{
  static const char hex[] = "0123456789abcdef";
  switch (v->t) {
  case ZQL_V_STRING:
    zql_strbuf_add(sb, v->u.s, v->len);
    break;
  case ZQL_V_DATE:
    zql_date_to_text(sb, v->u.i);
    break;
  case ZQL_V_DOUBLE:
    if (isfinite(v->u.d))
      zql_val_to_json(sb, v);
    else
      zql_double_to_text(sb, v->u.d, false); /* NaN, Infinity, -Infinity */
    break;
  case ZQL_V_OID:
    for (int i = 0; i < 12; i++) {
      zql_strbuf_addc(sb, hex[v->u.p[i] >> 4]);
      zql_strbuf_addc(sb, hex[v->u.p[i] & 15]);
    }
    break;
  case ZQL_V_REGEX: { /* len bytes "pattern\0flags\0" */
    const char *p = (const char *)v->u.p;
    size_t pl = v->len ? strnlen(p, v->len) : 0;
    size_t fl = pl + 1 < v->len ? strnlen(p + pl + 1, v->len - pl - 1) : 0;
    zql_strbuf_addc(sb, '/');
    zql_strbuf_add(sb, p, pl);
    zql_strbuf_addc(sb, '/');
    zql_strbuf_add(sb, p + pl + (pl < v->len), fl);
    break;
  }
  case ZQL_V_BINARY: { /* base64: the JSON string without its quotes (no escapes in it) */
    size_t at = sb->len;
    zql_val_to_json(sb, v);
    if (!sb->oom && sb->len >= at + 2 && sb->buf[at] == '"') {
      memmove(sb->buf + at, sb->buf + at + 1, sb->len - at - 2);
      sb->len -= 2;
      sb->buf[sb->len] = '\0';
    }
    break;
  }
  default:
    zql_val_to_json(sb, v);
    break;
  }
}

/* }==== */

/* {==== errors and writing ============================================================== */

static int fail_io(zql_rowwriter_t *w)
{
  if (!w->rc) {
    w->rc = ZQL_E_IO;
    w->io_errno = errno ? errno : EIO;
  }
  return w->rc;
}

static int fail_nomem(zql_rowwriter_t *w)
{
  if (!w->rc)
    w->rc = ZQL_E_NOMEM;
  return w->rc;
}

/* Write n bytes; 0 or the sticky error. */
static int put(zql_rowwriter_t *w, const void *p, size_t n)
{
  if (w->rc)
    return w->rc;
  errno = 0;
  if (n && (fwrite(p, 1, n, w->out) != n || ferror(w->out)))
    return fail_io(w);
  return 0;
}

/* Write the scratch buffer and empty it. */
static int put_buf(zql_rowwriter_t *w)
{
  if (w->buf.oom)
    return fail_nomem(w);
  int rc = put(w, w->buf.buf, w->buf.len);
  zql_strbuf_reset(&w->buf);
  return rc;
}

/* }==== */

/* {==== csv and json ==================================================================== */

/* A CSV field (RFC 4180): quoted only when it holds , " CR or LF. */
static void csv_field(zql_strbuf_t *sb, const char *s, size_t n)
{
  bool quote = false;
  for (size_t i = 0; i < n && !quote; i++)
    quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
  if (!quote) {
    zql_strbuf_add(sb, s, n);
    return;
  }
  zql_strbuf_addc(sb, '"');
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"')
      zql_strbuf_addc(sb, '"');
    zql_strbuf_addc(sb, s[i]);
  }
  zql_strbuf_addc(sb, '"');
}

static void csv_row(zql_rowwriter_t *w, const zql_val_t *vals)
{
  for (uint32_t i = 0; i < w->ncols; i++) {
    if (i)
      zql_strbuf_addc(&w->buf, ',');
    if (zql_val_is_nullish(&vals[i]))
      continue;
    zql_strbuf_reset(&w->tmp);
    zql_cell_text(&w->tmp, &vals[i]);
    csv_field(&w->buf, w->tmp.buf, w->tmp.len);
    if (w->tmp.oom)
      w->buf.oom = true;
  }
  zql_strbuf_addc(&w->buf, '\n');
}

static void json_object(zql_rowwriter_t *w, const zql_val_t *vals)
{
  zql_strbuf_addc(&w->buf, '{');
  for (uint32_t i = 0; i < w->ncols; i++) {
    if (i)
      zql_strbuf_addc(&w->buf, ',');
    zql_val_t name = zql_val_str(w->names[i], (uint32_t)strlen(w->names[i]));
    zql_val_to_json(&w->buf, &name);
    zql_strbuf_addc(&w->buf, ':');
    zql_val_to_json(&w->buf, &vals[i]);
  }
  zql_strbuf_addc(&w->buf, '}');
}

static int bson_row(zql_rowwriter_t *w, const zql_val_t *vals)
{
  bson_t doc;
  bson_init(&doc);
  for (uint32_t i = 0; i < w->ncols; i++)
    if (!zql_val_append_bson(&doc, w->names[i], -1, &vals[i])) {
      bson_destroy(&doc);
      return ZQL_E_TOO_LARGE;
    }
  int rc = put(w, bson_get_data(&doc), doc.len);
  bson_destroy(&doc);
  return rc;
}

/* }==== */

/* {==== table =========================================================================== */

static uint32_t cp_width(const char *s, size_t n)
{
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += ((unsigned char)s[i] & 0xC0) != 0x80;
  return k;
}

/* s[0..n) with control characters escaped, appended to sb. */
static void table_escape(zql_strbuf_t *sb, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != 0x7f)
      zql_strbuf_addc(sb, (char)ch);
    else if (ch == '\n')
      zql_strbuf_adds(sb, "\\n");
    else if (ch == '\t')
      zql_strbuf_adds(sb, "\\t");
    else if (ch == '\r')
      zql_strbuf_adds(sb, "\\r");
    else
      zql_strbuf_addf(sb, "\\x%02x", ch);
  }
}

/* Append the displayed form of s[0..n) to w->cellbuf as one cell record. */
static int table_cell(zql_rowwriter_t *w, const char *s, size_t n, bool right, uint32_t col)
{
  zql_strbuf_t *esc = &w->buf;
  zql_strbuf_reset(esc);
  table_escape(esc, s, n);
  if (esc->oom)
    return fail_nomem(w);
  size_t len = esc->len;
  uint32_t width = cp_width(esc->buf, len);
  bool cut = width > TABLE_MAX_WIDTH;
  if (cut) { /* keep TABLE_MAX_WIDTH - 1 code points, then the ellipsis */
    uint32_t k = 0;
    for (len = 0; len < esc->len; len++)
      if ((((unsigned char)esc->buf[len] & 0xC0) != 0x80) && k++ == TABLE_MAX_WIDTH - 1)
        break;
    width = TABLE_MAX_WIDTH;
  }
  if (w->ncells == w->capcells) {
    size_t cap = w->capcells ? w->capcells * 2 : 64;
    cell_t *c = zql_reallocarray(w->cells, cap, sizeof *c);
    if (!c)
      return fail_nomem(w);
    w->cells = c;
    w->capcells = cap;
  }
  cell_t *c = &w->cells[w->ncells];
  c->off = w->cellbuf.len;
  zql_strbuf_add(&w->cellbuf, esc->buf, len);
  if (cut)
    zql_strbuf_adds(&w->cellbuf, "\xe2\x80\xa6"); /* U+2026 HORIZONTAL ELLIPSIS */
  if (w->cellbuf.oom || w->cellbuf.len - c->off > UINT32_MAX)
    return fail_nomem(w);
  c->len = (uint32_t)(w->cellbuf.len - c->off);
  c->width = width;
  c->right = right;
  w->ncells++;
  if (width > w->widths[col])
    w->widths[col] = width;
  return 0;
}

static int table_row(zql_rowwriter_t *w, const zql_val_t *vals)
{
  for (uint32_t i = 0; i < w->ncols; i++) {
    const zql_val_t *v = &vals[i];
    int rc;
    if (zql_val_is_nullish(v)) {
      rc = table_cell(w, "null", 4, false, i);
    } else {
      zql_strbuf_reset(&w->tmp);
      zql_cell_text(&w->tmp, v);
      if (w->tmp.oom)
        return fail_nomem(w);
      rc = table_cell(w, w->tmp.buf, w->tmp.len, zql_val_is_num(v), i);
    }
    if (rc)
      return rc;
  }
  return 0;
}

/* Drop the trailing spaces of the scratch line, end it and write it. */
static int table_line(zql_rowwriter_t *w)
{
  while (w->buf.len && w->buf.buf[w->buf.len - 1] == ' ')
    w->buf.len--;
  if (!w->buf.oom)
    w->buf.buf[w->buf.len] = '\0';
  zql_strbuf_addc(&w->buf, '\n');
  return put_buf(w);
}

static int table_write(zql_rowwriter_t *w)
{
  zql_strbuf_reset(&w->buf);
  if (w->ncols > 0) {
    /* header: names centred (the extra space of an odd difference goes right) */
    for (uint32_t i = 0; i < w->ncols; i++) {
      const cell_t *h = &w->cells[i];
      uint32_t pad = w->widths[i] - h->width;
      zql_strbuf_adds(&w->buf, i ? " | " : " ");
      zql_strbuf_addchars(&w->buf, ' ', pad / 2);
      zql_strbuf_add(&w->buf, w->cellbuf.buf + h->off, h->len);
      zql_strbuf_addchars(&w->buf, ' ', pad - pad / 2);
    }
    if (table_line(w))
      return w->rc;
    for (uint32_t i = 0; i < w->ncols; i++) {
      if (i)
        zql_strbuf_addc(&w->buf, '+');
      zql_strbuf_addchars(&w->buf, '-', (size_t)w->widths[i] + 2);
    }
    if (table_line(w))
      return w->rc;
    for (size_t r = 1; r <= w->nrows; r++) {
      for (uint32_t i = 0; i < w->ncols; i++) {
        const cell_t *c = &w->cells[r * w->ncols + i];
        uint32_t pad = w->widths[i] - c->width;
        zql_strbuf_adds(&w->buf, i ? " | " : " ");
        if (c->right)
          zql_strbuf_addchars(&w->buf, ' ', pad);
        zql_strbuf_add(&w->buf, w->cellbuf.buf + c->off, c->len);
        if (!c->right)
          zql_strbuf_addchars(&w->buf, ' ', pad);
      }
      if (table_line(w))
        return w->rc;
    }
  }
  zql_strbuf_addf(&w->buf, "(%" PRIu64 " row%s)\n", w->nrows, w->nrows == 1 ? "" : "s");
  return put_buf(w);
}

/* }==== */

/* {==== the writer ====================================================================== */

static void writer_free(zql_rowwriter_t *w)
{
  if (w->names)
    for (uint32_t i = 0; i < w->ncols; i++)
      zql_free(w->names[i]);
  zql_free(w->names);
  zql_free(w->cells);
  zql_free(w->widths);
  zql_strbuf_release(&w->buf);
  zql_strbuf_release(&w->tmp);
  zql_strbuf_release(&w->cellbuf);
  zql_free(w);
}

int zql_rowwriter_open(zql_fmt_t fmt, FILE *out, const char *const *names, uint32_t ncols,
                       zql_rowwriter_t **wp, zql_strbuf_t *err)
{
  *wp = NULL;
  if ((unsigned)fmt >= ZQL_ARRAY_LEN(fmt_names) || !out || (ncols && !names)) {
    zql_strbuf_adds(err, "invalid row writer arguments");
    return ZQL_E_USAGE;
  }
  zql_rowwriter_t *w = zql_calloc(1, sizeof *w);
  if (!w) {
    zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  w->fmt = fmt;
  w->out = out;
  zql_strbuf_init(&w->buf);
  zql_strbuf_init(&w->tmp);
  zql_strbuf_init(&w->cellbuf);
  w->names = zql_calloc(ncols ? ncols : 1, sizeof *w->names);
  w->widths = zql_calloc(ncols ? ncols : 1, sizeof *w->widths);
  if (!w->names || !w->widths) {
    writer_free(w);
    zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  for (uint32_t i = 0; i < ncols; i++) {
    const char *nm = names[i] ? names[i] : "";
    if (!(w->names[i] = zql_strndup(nm, strlen(nm)))) {
      w->ncols = i;
      writer_free(w);
      zql_strbuf_adds(err, "out of memory");
      return ZQL_E_NOMEM;
    }
  }
  w->ncols = ncols;
  int rc = 0;
  if (fmt == ZQL_FMT_TABLE) { /* the header is row 0 of the cells */
    for (uint32_t i = 0; i < ncols && rc == 0; i++)
      rc = table_cell(w, w->names[i], strlen(w->names[i]), false, i);
  } else if (fmt == ZQL_FMT_CSV) {
    for (uint32_t i = 0; i < ncols; i++) {
      if (i)
        zql_strbuf_addc(&w->buf, ',');
      csv_field(&w->buf, w->names[i], strlen(w->names[i]));
    }
    zql_strbuf_addc(&w->buf, '\n');
    rc = put_buf(w);
  }
  if (rc) {
    zql_strbuf_adds(err, rc == ZQL_E_NOMEM ? "out of memory" : "write error: ");
    if (rc == ZQL_E_IO)
      zql_strbuf_adds(err, strerror(w->io_errno));
    writer_free(w);
    return rc;
  }
  *wp = w;
  return 0;
}

int zql_rowwriter_row(zql_rowwriter_t *w, const zql_val_t *vals)
{
  if (w->rc)
    return w->rc;
  int rc = 0;
  zql_strbuf_reset(&w->buf);
  switch (w->fmt) {
  case ZQL_FMT_TABLE:
    rc = table_row(w, vals);
    break;
  case ZQL_FMT_CSV:
    csv_row(w, vals);
    rc = put_buf(w);
    break;
  case ZQL_FMT_JSON:
    zql_strbuf_adds(&w->buf, w->nrows ? ",\n" : "[\n");
    json_object(w, vals);
    rc = put_buf(w);
    break;
  case ZQL_FMT_NDJSON:
    json_object(w, vals);
    zql_strbuf_addc(&w->buf, '\n');
    rc = put_buf(w);
    break;
  case ZQL_FMT_BSON:
    rc = bson_row(w, vals);
    break;
  }
  if (rc == 0)
    w->nrows++;
  return rc;
}

int zql_rowwriter_close(zql_rowwriter_t *w, zql_strbuf_t *err)
{
  if (!w)
    return 0;
  zql_strbuf_reset(&w->buf);
  if (w->fmt == ZQL_FMT_TABLE) {
    if (!w->rc)
      table_write(w);
  } else if (w->fmt == ZQL_FMT_JSON) {
    zql_strbuf_adds(&w->buf, w->nrows ? "\n]\n" : "[]\n");
    put_buf(w);
  }
  errno = 0;
  if (fflush(w->out) != 0 || ferror(w->out))
    fail_io(w);
  int rc = w->rc;
  if (rc == ZQL_E_IO)
    zql_strbuf_addf(err, "write error: %s", strerror(w->io_errno));
  else if (rc == ZQL_E_NOMEM)
    zql_strbuf_adds(err, "out of memory");
  writer_free(w);
  return rc;
}

/* }==== */
