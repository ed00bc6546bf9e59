/*
 * zql_parse.h -- the ZQL front end's public API: text -> tokens -> raw AST -> checked AST.
 *
 * Call order: zql_source_init/read_file (parser/source.h), then zql_parse() for each
 * file, then zql_analyze() over all parsed files at once (aggregates may read each other
 * across files). Each stage appends diagnostics to `diags` and the caller stops when
 * diags->nerr > 0 (warnings do not stop). Nothing here exits, aborts or longjmps.
 *
 *   zql_arena_t *q = zql_arena_create(NULL);
 *   zql_diags_t d; zql_diags_init(&d, q);
 *   zql_source_t src; zql_source_read_file(&src, q, path, &err);
 *   zql_node_t *file; zql_parse(q, &src, &d, &file);
 *   if (d.nerr == 0) zql_analyze(q, &file, 1, &d);
 *   zql_strbuf_t out = ZQL_STRBUF_INIT; zql_diags_render(&out, &d, false);
 *   ... zql_diags_release(&d); zql_arena_delete(q);
 */
#ifndef ZQL_PARSE_H
#define ZQL_PARSE_H

#include "runtime/base/zql_common.h"

#include "parser/ast.h"
#include "parser/source.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

/* Parse one source into a ZQL_N_FILE (*out is set even with errors: the items that
 * parsed, for recovery). Returns 0 when no error was found, ZQL_E_SYNTAX (or the first
 * lexical code) when diags got errors, ZQL_E_NOMEM when out of memory. */
int zql_parse(zql_arena_t *arena, const zql_source_t *src, zql_diags_t *diags,
              zql_node_t **out);

/* The source a ZQL_N_FILE was parsed from. */
const zql_source_t *zql_file_source(const zql_node_t *file);

/* Print the token stream, one token per line: "LINE:COL-LINE:COL KIND 'text'" (for
 * --dump=tokens). Lexical errors go to diags. Returns 0 or the first error code. */
int zql_dump_tokens(zql_arena_t *arena, const zql_source_t *src, zql_diags_t *diags,
                    zql_strbuf_t *out);

/* Name resolution, placement rules, type and option checks over `nfiles` parsed files,
 * filling the CHECKED fields of the trees in place. Returns 0 or ZQL_E_* of the first
 * error (all errors are in diags). */
int zql_analyze(zql_arena_t *arena, zql_node_t **files, size_t nfiles, zql_diags_t *diags);

/* Read, parse and analyze `n` files as one program (aggregates may refer to each other
 * across them); "-" reads stdin. files[i] is set to each parsed ZQL_N_FILE (NULL when the
 * file could not be read: an E0002 diagnostic without a source says why). Analysis runs
 * only when every file parsed without errors. Returns 0 or the first error code. */
int zql_compile_paths(zql_arena_t *arena, const char *const *paths, size_t n,
                      zql_diags_t *diags, zql_node_t **files);
/* The first half of zql_compile_paths: read and parse, no analysis (the caller may add
 * files, such as the catalog sources of runtime/store_input.h, then analyze). Returns 0
 * when every file parsed cleanly, else the first error code. */
int zql_parse_paths(zql_arena_t *arena, const char *const *paths, size_t n,
                    zql_diags_t *diags, zql_node_t **files);

/* Tree printers for --dump=ast (raw) and --dump=checked (with resolutions and types).
 * Stable text, no pointers: golden-tested. */
void zql_ast_print(zql_strbuf_t *out, const zql_node_t *n, bool checked);

#endif
