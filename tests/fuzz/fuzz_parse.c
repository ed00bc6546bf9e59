/*
 * fuzz_parse.c -- libFuzzer target for the whole front end: source text -> tokens ->
 * raw AST -> checked AST -> printed diagnostics and trees.
 *
 * One input is one .zql file. Each run gets a fresh query arena (as the CLI does), so a
 * leak or a use-after-free across inputs shows up under ASan. The target exercises every
 * path a user's file can reach: zql_parse, zql_analyze when parsing found no error,
 * diagnostic rendering (the long-line window, UTF-8 columns), and both tree printers.
 * It never aborts by itself: any crash, sanitizer report or time-out is a bug.
 *
 * Build and run: tests/fuzz/run-fuzz.sh (see tests/fuzz/README.md).
 */
#include "runtime/base/zql_common.h"

#include "parser/ast.h"
#include "parser/source.h"
#include "parser/zql_parse.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  zql_arena_t *arena = zql_arena_create(NULL);
  if (!arena)
    return 0;
  zql_diags_t diags;
  zql_diags_init(&diags, arena);
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_source_t src;

  if (zql_source_init(&src, arena, "fuzz.zql", (const char *)data, size) == 0) {
    zql_node_t *file = NULL;
    zql_parse(arena, &src, &diags, &file);
    if (file)
      zql_ast_print(&out, file, false);
    if (diags.nerr == 0 && file) {
      int rc = zql_analyze(arena, &file, 1, &diags);
      if (rc == 0 && diags.nerr == 0)
        zql_ast_print(&out, file, true);
    }
    zql_diags_sort(&diags);
    zql_diags_render(&out, &diags, false);
    zql_diags_render(&out, &diags, true);
  }

  zql_strbuf_release(&out);
  zql_diags_release(&diags);
  zql_arena_delete(arena);
  return 0;
}
