/*
 * parse.c -- the front end's entry points: things start here (stages 1-2).
 *
 *   zql_parse:       source -> scanner (scan.l) -> parser (gram.y) -> ZQL_N_FILE
 *   zql_dump_tokens: source -> scanner -> one line per token (--dump=tokens)
 *
 * zql_analyze (analyze.c) then checks the trees. Each stage records its errors in the
 * caller's zql_diags_t; callers stop between stages when diags->nerr > 0.
 */
#include "runtime/base/zql_common.h"

#include "parser/gram.h"
#include "parser/scanner.h"
#include "parser/zql_parse.h"

/* The first error this source added to diags since index `from` (its code), or 0. */
static int first_error(const zql_diags_t *diags, size_t from, const zql_source_t *src)
{
  for (size_t i = from; i < diags->n; i++)
    if (diags->items[i].severity == ZQL_SEV_ERROR && diags->items[i].source == src)
      return diags->items[i].code;
  return 0;
}

int zql_parse(zql_arena_t *arena, const zql_source_t *src, zql_diags_t *diags,
              zql_node_t **out)
{
  zql_parse_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.lex.arena = arena;
  ctx.lex.src = src;
  ctx.lex.diags = diags;
  zql_span_t all = {0, src->len};
  *out = NULL;
  ctx.file = zql_node_new(arena, ZQL_N_FILE, all);
  if (!ctx.file)
    return ZQL_E_NOMEM;
  ctx.file->u.file.source = src;
  *out = ctx.file;
  size_t n0 = diags->n;
  int nerr0 = diags->nerr;
  zql_scanner_t scanner;
  if (zql_scanner_init(&scanner, &ctx.lex) != 0)
    return ZQL_E_NOMEM;
  int rc = zql_gram_parse(scanner, &ctx);
  zql_scanner_destroy(scanner);
  zql_node_fix_depth(ctx.file);
  if (ctx.lex.oom || diags->oom || (rc == 2 && !ctx.deep_reported))
    return ZQL_E_NOMEM;
  if (diags->nerr > nerr0) {
    int code = first_error(diags, n0, src);
    return code ? code : ZQL_E_SYNTAX;
  }
  if (rc != 0) { /* an abort always reports first; never claim success without it */
    zql_diag_add(diags, src, ZQL_E_SYNTAX, all, "cannot parse");
    return ZQL_E_SYNTAX;
  }
  return 0;
}

const zql_source_t *zql_file_source(const zql_node_t *file)
{
  return file->kind == ZQL_N_FILE ? file->u.file.source : NULL;
}

int zql_dump_tokens(zql_arena_t *arena, const zql_source_t *src, zql_diags_t *diags,
                    zql_strbuf_t *out)
{
  zql_lex_t lex;
  memset(&lex, 0, sizeof lex);
  lex.arena = arena;
  lex.src = src;
  lex.diags = diags;
  size_t n0 = diags->n;
  zql_scanner_t scanner;
  if (zql_scanner_init(&scanner, &lex) != 0)
    return ZQL_E_NOMEM;
  for (;;) {
    ZQL_YYSTYPE val;
    zql_span_t loc;
    int tok = zql_yylex(&val, &loc, scanner);
    uint32_t l1, c1, l2, c2;
    zql_source_linecol(src, loc.start, &l1, &c1);
    zql_source_linecol(src, loc.end, &l2, &c2);
    char name[32];
    zql_strbuf_addf(out, "%u:%u-%u:%u %s", l1, c1, l2, c2,
                    zql_token_name(tok, name, sizeof name));
    switch (tok) {
    case IDENT:
    case PARAMREF:
      zql_strbuf_addf(out, " %s", val.str.s);
      break;
    case STRING:
      zql_strbuf_addc(out, ' ');
      zql_strbuf_add_quoted(out, val.str.s, val.str.len);
      break;
    case INT:
    case DURATION:
      zql_strbuf_addf(out, " %" PRId64, val.i64);
      break;
    case DOUBLE:
      zql_strbuf_addf(out, " %.17g", val.dbl);
      break;
    case REGEX:
      zql_strbuf_addf(out, " /%s/%s", val.re.pattern, val.re.flags);
      break;
    default:
      break;
    }
    zql_strbuf_addc(out, '\n');
    if (tok == END)
      break;
  }
  zql_scanner_destroy(scanner);
  if (lex.oom || out->oom)
    return ZQL_E_NOMEM;
  return first_error(diags, n0, src);
}

int zql_parse_paths(zql_arena_t *arena, const char *const *paths, size_t n,
                    zql_diags_t *diags, zql_node_t **files)
{
  int first = 0;
  for (size_t i = 0; i < n; i++) {
    files[i] = NULL;
    zql_source_t *src = zql_arena_calloc(arena, 1, sizeof *src);
    if (!src)
      return ZQL_E_NOMEM;
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    int rc = zql_source_read_file(src, arena, paths[i], &err);
    if (rc == ZQL_E_NOMEM) {
      zql_strbuf_release(&err);
      return rc;
    }
    if (rc != 0) {
      zql_span_t none = {0, 0};
      zql_diag_add(diags, NULL, rc, none, "%s", err.buf);
      zql_strbuf_release(&err);
      if (!first)
        first = rc;
      continue;
    }
    zql_strbuf_release(&err);
    src->order = (uint32_t)i;
    rc = zql_parse(arena, src, diags, &files[i]);
    if (rc == ZQL_E_NOMEM)
      return rc;
    if (rc && !first)
      first = rc;
  }
  if (diags->nerr > 0)
    return first ? first : ZQL_E_SYNTAX;
  return 0;
}

int zql_compile_paths(zql_arena_t *arena, const char *const *paths, size_t n,
                      zql_diags_t *diags, zql_node_t **files)
{
  int rc = zql_parse_paths(arena, paths, n, diags, files);
  return rc ? rc : zql_analyze(arena, files, n, diags);
}
