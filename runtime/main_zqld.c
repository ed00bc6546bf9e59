/*
 * main_zqld.c -- the `zqld` daemon binary (thin layer over libzql).
 *
 * The daemon's services (ingest endpoints, event log writer, scheduler, HTTP service)
 * arrive with their issues. What it does today is what it will do first at every
 * start and SIGHUP: load the aggregate definitions it is given, check them as one
 * program, and print the schedule it would run -- so a deployment can be validated:
 *
 *   zqld --check FILE.zql...    exit 0 when every definition is valid, 1 on errors
 *   zqld --version | --help
 */
#include "runtime/base/zql_common.h"

#include <unistd.h>

#include "runtime/zql.h"

static void usage(FILE *f)
{
  fprintf(f,
          "usage: zqld --check FILE.zql...\n"
          "\n"
          "The zql daemon. Options:\n"
          "  --check FILE...   load and check the aggregate definitions, print the\n"
          "                    schedule of each aggregate, and exit (0 valid, 1 errors)\n"
          "  -h, --help        show this help\n"
          "  --version         show the version\n");
}

static void print_schedule(const zql_node_t *file)
{
  const zql_source_t *src = zql_file_source(file);
  for (uint32_t i = 0; i < file->u.list.n; i++) {
    const zql_node_t *it = file->u.list.items[i];
    if (it->kind != ZQL_N_AGGREGATE)
      continue;
    const zql_node_t *sched = NULL;
    for (uint32_t k = 0; k < it->u.query.options.n; k++)
      if (it->u.query.options.items[k]->u.option.opt == ZQL_OPT_SCHEDULE)
        sched = it->u.query.options.items[k];
    printf("%s: aggregate %s: ", src->name, it->u.query.name);
    if (!sched) {
      printf("run on demand (no schedule)\n");
      continue;
    }
    uint32_t from = sched->span.start + (uint32_t)strlen("schedule");
    while (from < sched->span.end && (src->text[from] == ' ' || src->text[from] == '\n'))
      from++;
    printf("%.*s\n", (int)(sched->span.end - from), src->text + from);
  }
}

int main(int argc, char **argv)
{
  bool check = false;
  int first_file = argc;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("zqld %s\n", zql_version());
      return 0;
    } else if (strcmp(argv[i], "--check") == 0) {
      check = true;
    } else if (argv[i][0] == '-' && strcmp(argv[i], "-") != 0) {
      fprintf(stderr, "zqld: unknown option '%s'\nTry 'zqld --help'.\n", argv[i]);
      return 2;
    } else {
      first_file = i;
      break;
    }
  }
  if (!check || first_file >= argc) {
    fprintf(stderr, "zqld: %s\nTry 'zqld --help'.\n",
            check ? "--check needs at least one .zql file" : "nothing to do: use --check FILE...");
    return 2;
  }
  size_t n = (size_t)(argc - first_file);
  zql_arena_t *arena = zql_arena_create(NULL);
  zql_node_t **files = arena ? zql_arena_calloc(arena, n, sizeof *files) : NULL;
  if (!files) {
    fputs("zqld: out of memory\n", stderr);
    zql_arena_delete(arena);
    return 1;
  }
  zql_diags_t d;
  zql_diags_init(&d, arena);
  int rc = zql_compile_paths(arena, (const char *const *)(argv + first_file), n, &d, files);
  zql_diags_sort(&d);
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_diags_render(&out, &d, false);
  fwrite(out.buf, 1, out.len, stderr);
  zql_strbuf_release(&out);
  if (rc == 0 && d.nerr == 0)
    for (size_t i = 0; i < n; i++)
      print_schedule(files[i]);
  int status = (rc != 0 || d.nerr > 0) ? 1 : 0;
  zql_diags_release(&d);
  zql_arena_delete(arena);
  return status;
}
