/*
 * source.h -- a ZQL source text and its line map; diagnostic rendering (stage 1 support).
 *
 * A zql_source_t owns (in its arena) a copy of the text, NUL-terminated, and a table of
 * line start offsets, built once. Spans everywhere are byte offsets into `text`; this is
 * the only place that turns them into LINE:COL (columns count UTF-8 code points, from 1)
 * and draws the source line with a caret/tilde underline, jq locfile.c style:
 *
 *   q.zql:3:9: error: unknown name 'usr' [E3001]
 *       3 |   where usr == "x"
 *         |         ^~~
 *   hint: did you mean 'context.user'?
 *
 * Lines longer than 120 columns are cut around the caret with "..." on either side.
 */
#ifndef ZQL_SOURCE_H
#define ZQL_SOURCE_H

#include "runtime/base/zql_common.h"

#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

#define ZQL_SOURCE_MAX (256u << 20) /* 256 MiB */

typedef struct zql_source {
  const char *name; /* file name as given, or "<stdin>", "<string>" */
  const char *text; /* NUL-terminated copy (may contain NULs before len) */
  uint32_t len;
  uint32_t *line_starts; /* nlines entries; line_starts[0] == 0 */
  uint32_t nlines;
  uint32_t order; /* position among the files compiled together (diagnostic order) */
} zql_source_t;

/* Copy `len` bytes of text into `arena` and index its lines. Returns 0, ZQL_E_NOMEM, or
 * ZQL_E_TOO_LARGE when len > ZQL_SOURCE_MAX. */
int zql_source_init(zql_source_t *src, zql_arena_t *arena, const char *name,
                    const char *text, size_t len);
/* Read a whole file ("-" = stdin). Returns 0, ZQL_E_IO (with errno's text in `err`),
 * ZQL_E_NOMEM or ZQL_E_TOO_LARGE. */
int zql_source_read_file(zql_source_t *src, zql_arena_t *arena, const char *path,
                         zql_strbuf_t *err);

/* 1-based line and column (code points) of a byte offset (clamped to the text). */
void zql_source_linecol(const zql_source_t *src, uint32_t off, uint32_t *line,
                        uint32_t *col);

/* Sort diagnostics stably by (source order, start offset), errors without a source
 * first, so output follows the files and the text within each file. */
void zql_diags_sort(zql_diags_t *d);

/* Render one diagnostic as shown above; `color` adds ANSI colours. */
void zql_diag_render(zql_strbuf_t *out, const zql_error_t *e, bool color);
/* Render all of them, then a "too many errors" line when the cap was hit. */
void zql_diags_render(zql_strbuf_t *out, const zql_diags_t *d, bool color);

#endif
