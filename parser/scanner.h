/*
 * scanner.h -- the interface between scan.l and gram.y (stage 1 -> 2), hand-written so
 * that no flex-generated header is needed (PostgreSQL scanner.h).
 *
 * The scanner is reentrant: all its state lives in a yyscan_t (opaque here as
 * zql_scanner_t) whose "extra" is a zql_lex_t. Tokens carry byte spans; the semantic
 * value of literals is in ZQL_YYSTYPE (gram.h). Lexical errors are reported to
 * lex->diags and the scanner returns the token INVALID (or END for fatal ones), which
 * the grammar never accepts, so the parser recovers at the next ';' without printing a
 * second error for the same spot.
 */
#ifndef ZQL_SCANNER_H
#define ZQL_SCANNER_H

#include "runtime/base/zql_common.h"

#include <setjmp.h>

#include "parser/source.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"

typedef void *zql_scanner_t;

typedef struct zql_lex {
  zql_arena_t *arena;
  const zql_source_t *src;
  zql_diags_t *diags;
  uint32_t off;      /* byte offset of the next character */
  int prev;          /* previous token kind (decides '/' = division or regex) */
  int depth;         /* open ( [ { */
  bool fatal;        /* stop: the scanner returns END from now on */
  bool last_invalid; /* the last token returned was INVALID (error already reported) */
  bool oom;
  jmp_buf oom_jmp;   /* private to scan.l: flex's fatal-error exit (see there) */
} zql_lex_t;

/* Create a scanner over src (the whole text); 0 or ZQL_E_NOMEM. */
int zql_scanner_init(zql_scanner_t *scanner, zql_lex_t *lex);
void zql_scanner_destroy(zql_scanner_t scanner);

/* Readable name of a token kind for --dump=tokens: "identifier", "and", "==", "'('". */
const char *zql_token_name(int kind, char *buf, size_t size);

#endif
