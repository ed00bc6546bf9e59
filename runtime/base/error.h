/*
 * error.h -- errors as data (layer 0): error codes, zql_error_t, diagnostic lists.
 *
 * Codes come from the one table runtime/base/errcodes.txt (generated errcodes.h). A
 * code's enum value is the negated number of its table code, so runtime functions return
 * 0 or a negative ZQL_E_* (libuv style): ZQL_E_NOMEM == -1, ZQL_E_UNKNOWN_NAME == -3001,
 * ZQL_W_NULL_COMPARISON == -3901.
 *
 * A zql_error_t is a code plus message, optional hint and a byte span into a named
 * source (the span is [start, end) byte offsets; line and column are computed only when
 * the error is rendered, see parser/source.h). Compile stages append errors to a
 * zql_diags_t; the driver stops between stages when diags->nerr > 0. Nothing in zql calls
 * exit() or abort() on user input.
 *
 * Message style (git, PostgreSQL): lowercase, no trailing period, what failed first,
 * names in '...'. Hints are full phrases ("did you mean 'context.user'?").
 */
#ifndef ZQL_ERROR_H
#define ZQL_ERROR_H

#include "runtime/base/zql_common.h"

#include "runtime/base/arena.h"

typedef enum zql_errcode {
  ZQL_OK = 0,
#define ZQL_ERRCODE(num, name, str, cls, msg) name = -(num),
#include "runtime/base/errcodes.h"
#undef ZQL_ERRCODE
} zql_errcode_t;

/* "E3001" / "W3901" for a code (static storage); "E????" for an unknown code. */
const char *zql_err_code_str(int code);
/* "UNKNOWN_NAME" for ZQL_E_UNKNOWN_NAME; NULL for an unknown code. */
const char *zql_err_name(int code);
/* The table's default message: "unknown name". */
const char *zql_strerror(int code);
/* "lexical", "syntax", "semantic", "runtime" or "warning". */
const char *zql_err_class(int code);
/* Call fn for every code in table order (for docs and tests). */
void zql_err_foreach(void (*fn)(int code, void *arg), void *arg);

struct zql_strbuf;
/* Append the message to err (when err is not NULL) and return code: the one-line failure
 * of the runtime's services, `return zql_fail(err, ZQL_E_IO, "cannot open '%s'", p);`. */
int zql_fail(struct zql_strbuf *err, int code, const char *fmt, ...) ZQL_PRINTF(3, 4);

typedef enum zql_severity {
  ZQL_SEV_ERROR,
  ZQL_SEV_WARNING,
  ZQL_SEV_NOTE
} zql_severity_t;

/* A byte range [start, end) in a source text. */
typedef struct zql_span {
  uint32_t start;
  uint32_t end;
} zql_span_t;

struct zql_source; /* parser/source.h */

typedef struct zql_error {
  int code;                        /* ZQL_E_* or ZQL_W_* */
  zql_severity_t severity;
  const char *message;             /* never NULL */
  const char *hint;                /* NULL when there is none */
  zql_span_t span;
  const struct zql_source *source; /* NULL: not tied to a source text */
} zql_error_t;

/* An append-only list of diagnostics; strings live in `arena`. */
typedef struct zql_diags {
  zql_arena_t *arena;
  zql_error_t *items;
  size_t n, cap;
  int nerr, nwarn;
  int max_errors; /* stop recording errors past this (0: 50) */
  bool oom;       /* an allocation failed while recording */
} zql_diags_t;

void zql_diags_init(zql_diags_t *d, zql_arena_t *arena);
void zql_diags_release(zql_diags_t *d); /* frees the item array (strings belong to the arena) */

/* Append a diagnostic; severity follows from the code (W codes are warnings). Returns the
 * new entry (to attach a hint) or NULL when not recorded (out of memory or the error cap
 * reached; nerr still counts it). */
zql_error_t *zql_diag_add(zql_diags_t *d, const struct zql_source *src, int code,
                          zql_span_t span, const char *fmt, ...) ZQL_PRINTF(5, 6);
void zql_diag_hint(zql_diags_t *d, zql_error_t *e, const char *fmt, ...) ZQL_PRINTF(3, 4);

#endif
