/*
 * output.h -- writing result rows as text or BSON (stage 4, the end of an ad-hoc query and
 * of `zql run --dry-run`).
 *
 * A result is a sequence of rows of `ncols` values under column names (keys first, then
 * computed fields: design/ZQL.md resolved point 6). A row writer turns them into one of
 * five formats:
 *
 *   table   for people, like psql: a header line of the names (centred), a separator
 *           line ("---+---"), one line per row, then "(N rows)" ("(1 row)"). Numbers are
 *           right-aligned, everything else left-aligned; NULL, MISSING and ERROR show as
 *           `null`. Columns are as wide as their widest cell, counted in code points (UTF-8
 *           bytes that are not continuation bytes; wide CJK characters count as one).
 *           A cell wider than 60 is cut to 59 code points and "…". Control characters are
 *           shown escaped (\n, \t, \r, \xHH) so a row stays on one line; lines carry no
 *           trailing spaces. The whole result is buffered (the cell texts, not the values)
 *           and written by zql_rowwriter_close.
 *   csv     RFC 4180 with LF line ends: a header line of the names, then one line per
 *           row. A field is quoted ("..." with "" for a quote) only when it contains a
 *           comma, a quote, CR or LF. NULL, MISSING and ERROR are empty fields, so they
 *           are not told apart from an empty string.
 *   json    a JSON array of row objects: "[" on a line of its own, one object per line
 *           separated by ",", "]" on a line of its own; an empty result is the line "[]".
 *   ndjson  one JSON object per line.
 *           JSON objects are keyed by the column names in column order, compact
 *           ({"k":"a","n":1}); values as zql_val_to_json: dates are ISO-8601 UTC strings
 *           with milliseconds, MISSING, ERROR, NaN and infinities are null.
 *   bson    one BSON document per row, concatenated (the .bson format of mongodump);
 *           fields in column order through zql_val_append_bson: a MISSING field is
 *           left out, an ERROR is null.
 *
 * Cell text (csv and table, and str() in exec/func.c) is zql_cell_text: a string's raw
 * bytes, a date in ISO-8601 UTC, an ObjectId as 24 hex digits, binary data as base64, a
 * regex as /pattern/flags, NaN and infinities as NaN, Infinity, -Infinity, every other
 * value as its JSON text (documents and arrays as compact JSON).
 *
 * Usage: zql_rowwriter_open -> zql_rowwriter_row* -> zql_rowwriter_close. The FILE stays
 * the caller's (close flushes it but does not fclose it). Write errors (EPIPE, ENOSPC...)
 * are sticky: the first one is returned by that row() call or by close(), and every row()
 * after it returns it again without writing. A writer is used by one thread.
 */
#ifndef ZQL_OUTPUT_H
#define ZQL_OUTPUT_H

#include "runtime/base/zql_common.h"

#include "exec/value.h"
#include "runtime/base/strbuf.h"

typedef enum zql_fmt {
  ZQL_FMT_TABLE,
  ZQL_FMT_CSV,
  ZQL_FMT_JSON,
  ZQL_FMT_NDJSON,
  ZQL_FMT_BSON
} zql_fmt_t;

typedef struct zql_rowwriter zql_rowwriter_t;

/* "table", "csv", "json", "ndjson" or "bson" (exact, lowercase) into *out. Returns 0 or
 * ZQL_E_USAGE. */
int zql_fmt_parse(const char *name, zql_fmt_t *out);
/* The name zql_fmt_parse reads for fmt ("?" for an invalid value). */
const char *zql_fmt_name(zql_fmt_t fmt);

/* A writer of rows of ncols columns named names[0..ncols) (copied) to out. csv writes its
 * header line now. Returns 0, or ZQL_E_USAGE (an invalid fmt or a NULL out), ZQL_E_NOMEM
 * or ZQL_E_IO, with a one-line reason appended to err; *w is NULL then. */
int zql_rowwriter_open(zql_fmt_t fmt, FILE *out, const char *const *names, uint32_t ncols,
                       zql_rowwriter_t **w, zql_strbuf_t *err);
/* Write (table: keep a copy of the cell texts of) the row vals[0..ncols). Returns 0,
 * ZQL_E_IO (a write failed, now or before), ZQL_E_NOMEM, or ZQL_E_TOO_LARGE (bson: the
 * row does not fit in a BSON document; nothing written, the writer stays usable). */
int zql_rowwriter_row(zql_rowwriter_t *w, const zql_val_t *vals);
/* Finish the output (table: all of it; json: the closing "]"), flush out and free w.
 * Returns 0 or the first ZQL_E_IO / ZQL_E_NOMEM of the writer's life, with a one-line
 * reason ("write error: No space left on device") appended to err. NULL is a no-op. */
int zql_rowwriter_close(zql_rowwriter_t *w, zql_strbuf_t *err);

/* Append the cell text of v (see above) to sb. NULL, MISSING and ERROR give "null". */
void zql_cell_text(zql_strbuf_t *sb, const zql_val_t *v);

#endif
