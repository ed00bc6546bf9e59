/*
 * cmd_gen.c -- `zql gen`: write deterministic synthetic events (runtime services).
 *
 *   zql gen --events N [--seed S] [--days D] [--projects P] [--users U]
 *           [--start ISO-DATE] [--format ndjson|bson|ndjson-canonical] [--gzip] [-o FILE]
 *           [--log]
 *
 * Where the events go: -o FILE (or -o - for stdout); else, with --log or with `--data DIR`
 * on the command line (`zql --data D gen ...`), appended to that data directory's event
 * log (runtime/evlog.c) in batches; else stdout.
 *
 * Pipeline position: a command-line front for runtime/gen.c (the events) and
 * runtime/ioformat.c (the file formats); main_zql.c calls zql_cmd_gen with the global
 * options already removed (runtime/cli.h).
 *
 * Flow: parse the options (every problem is a usage error, exit 2, with a one-line
 * reason and a pointer to --help), open the writer (stdout, or -o FILE; a FILE ending in
 * ".gz" implies --gzip), generate and write N events, close the writer and report an I/O
 * failure with exit 1. BSON is never written to a terminal.
 *
 * Invariant: the output is a pure function of the options (see gen.h); nothing here reads
 * the clock or the environment.
 */
#include "runtime/base/zql_common.h"

#include "runtime/gen.h"

#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/cli.h"
#include "runtime/evlog.h"
#include "runtime/ioformat.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
  fputs("Usage: zql gen --events N [options]\n"
        "\n"
        "Write N deterministic synthetic SourceForge-style events (pageview, download,\n"
        "api_call, search, visit, signup_form, signup_done, login, commit, ticket): the\n"
        "same options give the same bytes on every machine.\n"
        "\n"
        "Options:\n"
        "  --events N          how many events (required)\n"
        "  --seed S            random seed (default 1)\n"
        "  --days D            length of the time window in days (default 7)\n"
        "  --start DATE        window start, YYYY-MM-DD or an ISO date-time with Z\n"
        "                      (default 2024-01-01T00:00:00Z)\n"
        "  --projects P        number of projects, Zipf-distributed (default 200)\n"
        "  --users U           number of users, Zipf-distributed (default 5000)\n"
        "  --format F          ndjson (relaxed extended JSON, the default), bson\n"
        "                      (concatenated, mongodump style) or ndjson-canonical\n"
        "  -z, --gzip          gzip the output (implied by -o FILE.gz)\n"
        "  -o, --output FILE   write to FILE (\"-\": stdout)\n"
        "  --log               append to the event log of the data directory; the default\n"
        "                      when --data DIR is on the command line and -o is not\n"
        "  -h, --help          show this help\n",
        f);
}

int zql_cli_usage_error(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "zql %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'zql %s --help'.\n", cmd);
  return EXIT_USAGE;
}

#define usage_error(...) zql_cli_usage_error("gen", __VA_ARGS__)

bool zql_cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *v)
{
  if (*s < '0' || *s > '9')
    return false;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno || *end || x < lo || x > hi)
    return false;
  *v = x;
  return true;
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

typedef struct {
  zql_iowriter_t *w;
  zql_strbuf_t *err;
} sink_t;

static int write_one(const bson_t *doc, void *arg)
{
  sink_t *s = arg;
  return zql_iowriter_write(s->w, doc, s->err);
}

/* Append the events to the data directory's log, BATCH events per zql_evlog_append. */
static int gen_to_log(const zql_cli_t *cli, const zql_gen_opts_t *go)
{
  enum { BATCH = 4096 };
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_gen_t *g = NULL;
  zql_evlog_t *log = NULL;
  bson_t **docs = zql_calloc(BATCH, sizeof *docs);
  size_t n = 0;
  int64_t first = 0, seq;
  int rc = docs ? zql_gen_new(go, &g, &err) : ZQL_E_NOMEM;
  if (rc == 0)
    rc = zql_evlog_open(cli->data_dir, NULL, &log, &err);
  const bson_t *doc;
  while (rc == 0 && zql_gen_next(g, &doc) == 1) {
    if (!(docs[n] = bson_copy(doc))) {
      rc = ZQL_E_NOMEM;
      break;
    }
    if (++n == BATCH || zql_gen_count(g) == go->events) {
      rc = zql_evlog_append(log, (const bson_t *const *)docs, n, &seq, &err);
      if (rc == 0 && !first)
        first = seq;
      for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
      n = 0;
    }
  }
  for (size_t i = 0; i < n; i++)
    bson_destroy(docs[i]);
  if (log) {
    int crc = zql_evlog_close(log, rc == 0 ? &err : NULL);
    if (rc == 0)
      rc = crc;
  }
  zql_gen_free(g);
  zql_free(docs);
  if (rc != 0) {
    fprintf(stderr, "zql gen: error: %s\n", err.len ? err.buf : zql_strerror(rc));
    zql_strbuf_release(&err);
    return EXIT_FAIL;
  }
  if (cli->verbosity >= 0)
    fprintf(stderr, "zql gen: appended %" PRIu64 " events to %s/events (_seq %" PRId64 "..%" PRId64 ")\n",
            go->events, cli->data_dir, first, go->events ? first + (int64_t)go->events - 1 : first - 1);
  zql_strbuf_release(&err);
  return EXIT_OK;
}

int zql_cmd_gen(const zql_cli_t *cli, int argc, char **argv)
{
  zql_gen_opts_t go;
  zql_gen_opts_init(&go);
  zql_iowriter_opts_t wo = {ZQL_IOFMT_NDJSON, false, 0};
  const char *output = NULL;
  bool have_events = false;
  bool to_log = false;

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      usage(stdout);
      return EXIT_OK;
    }
    if (strcmp(arg, "-z") == 0 || strcmp(arg, "--gzip") == 0) {
      wo.gzip = true;
      continue;
    }
    if (strcmp(arg, "--log") == 0) {
      to_log = true;
      continue;
    }
    /* the options with a value: "--name VALUE" or "--name=VALUE" */
    static const char *const valued[] = {"--events", "--seed",   "--days",   "--projects",
                                         "--users",  "--start",  "--format", "--output",
                                         "-o"};
    const char *name = NULL, *val = NULL;
    for (size_t k = 0; k < ZQL_ARRAY_LEN(valued) && !name; k++) {
      size_t n = strlen(valued[k]);
      if (strcmp(arg, valued[k]) == 0) {
        if (i + 1 >= argc)
          return usage_error("option '%s' needs a value", arg);
        name = valued[k];
        val = argv[++i];
      } else if (strncmp(arg, valued[k], n) == 0 && arg[n] == '=' && valued[k][1] == '-') {
        name = valued[k];
        val = arg + n + 1;
      }
    }
    if (!name) {
      if (arg[0] == '-' && arg[1])
        return usage_error("unknown option '%s'", arg);
      return usage_error("unexpected argument '%s'", arg);
    }
    uint64_t v;
    if (strcmp(name, "--events") == 0) {
      if (!zql_cli_parse_u64(val, 0, UINT64_C(1000000000000), &v))
        return usage_error("--events needs a count from 0 to 10^12, not '%s'", val);
      go.events = v;
      have_events = true;
    } else if (strcmp(name, "--seed") == 0) {
      if (!zql_cli_parse_u64(val, 0, UINT64_MAX, &v))
        return usage_error("--seed needs a non-negative integer, not '%s'", val);
      go.seed = v;
    } else if (strcmp(name, "--days") == 0) {
      if (!zql_cli_parse_u64(val, 1, ZQL_GEN_MAX_DAYS, &v))
        return usage_error("--days needs a number from 1 to %u, not '%s'", ZQL_GEN_MAX_DAYS, val);
      go.days = (uint32_t)v;
    } else if (strcmp(name, "--projects") == 0) {
      if (!zql_cli_parse_u64(val, 1, ZQL_GEN_MAX_PROJECTS, &v))
        return usage_error("--projects needs a number from 1 to %u, not '%s'",
                           ZQL_GEN_MAX_PROJECTS, val);
      go.projects = (uint32_t)v;
    } else if (strcmp(name, "--users") == 0) {
      if (!zql_cli_parse_u64(val, 1, ZQL_GEN_MAX_USERS, &v))
        return usage_error("--users needs a number from 1 to %u, not '%s'", ZQL_GEN_MAX_USERS,
                           val);
      go.users = (uint32_t)v;
    } else if (strcmp(name, "--start") == 0) {
      if (zql_gen_parse_date(val, &go.start_ms) < 0)
        return usage_error("--start needs a date like 2024-01-01 or 2024-01-01T00:00:00Z,"
                           " not '%s'", val);
    } else if (strcmp(name, "--format") == 0) {
      if (zql_iofmt_parse(val, &wo.format) < 0 || wo.format == ZQL_IOFMT_AUTO)
        return usage_error("--format must be ndjson, bson or ndjson-canonical, not '%s'", val);
    } else {
      output = val;
    }
  }
  if (!have_events)
    return usage_error("missing --events N (how many events to generate)");
  if (to_log && output)
    return usage_error("--log and -o are exclusive");
  if (!output && cli && cli->data_explicit)
    to_log = true;
  if (to_log)
    return gen_to_log(cli, &go);
  if (output && !*output)
    return usage_error("-o needs a file name");
  if (output && strcmp(output, "-") == 0)
    output = NULL;
  if (output && ends_with(output, ".gz"))
    wo.gzip = true;
  if (!output && (wo.format == ZQL_IOFMT_BSON || wo.gzip) && isatty(STDOUT_FILENO))
    return usage_error("refusing to write binary output to a terminal; use -o FILE or a pipe");

  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_gen_t *g = NULL;
  int rc = zql_gen_new(&go, &g, &err);
  if (rc < 0) {
    fprintf(stderr, "zql gen: %s\n", err.buf);
    zql_strbuf_release(&err);
    return rc == ZQL_E_USAGE ? EXIT_USAGE : EXIT_FAIL;
  }
  zql_gen_free(g); /* the options are valid; zql_gen_each makes its own */

  zql_iowriter_t *w;
  rc = zql_iowriter_open(output ? output : "-", &wo, &w, &err);
  if (rc == 0) {
    sink_t sink = {w, &err};
    rc = zql_gen_each(&go, write_one, &sink, &err);
    int crc = zql_iowriter_close(w, rc < 0 ? NULL : &err);
    if (rc == 0)
      rc = crc;
  }
  if (rc < 0) {
    fprintf(stderr, "zql gen: error: %s\n", err.oom ? "out of memory" : err.buf);
    zql_strbuf_release(&err);
    return EXIT_FAIL;
  }
  if (cli && cli->verbosity > 0)
    fprintf(stderr, "zql gen: %" PRIu64 " events written to %s\n", go.events,
            output ? output : "stdout");
  zql_strbuf_release(&err);
  return EXIT_OK;
}
