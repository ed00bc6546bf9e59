/*
 * cmd_log.c -- `zql log check [--repair]` and `zql log stat`: maintenance of the event
 * log (runtime services, a subcommand of the zql CLI; see runtime/cli.h).
 *
 *   zql log check [--repair]   verify every CRC, header and index of DATA/events; print
 *                              one line per problem (file and offset); exit 1 when any
 *                              problem remains, 0 when the log is sound (or repaired)
 *   zql log stat               one table row per segment: state, records, _seq range,
 *                              time range (UTC), bytes; then a "total" row (its state
 *                              column holds the number of segments)
 *
 * Both read cli->data_dir. check without --repair works next to a running writer (an
 * incomplete tail is then noted, not counted); --repair needs the writer lock and only
 * ever truncates torn tails or finishes interrupted seals (runtime/evlog_check.c).
 * Exit statuses: 0 fine, 1 problems or errors, 2 usage.
 */
#include "runtime/base/zql_common.h"

#include <time.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/cli.h"
#include "runtime/evlog.h"


static int usage(FILE *f, int status)
{
  fprintf(f, "usage: zql log check [--repair]\n"
             "       zql log stat\n"
             "\n"
             "  check     verify every record CRC, segment header and index of the event log;\n"
             "            exit 1 when a problem is found\n"
             "  --repair  truncate a torn tail left by a crash (never changes sealed data)\n"
             "  stat      list the segments: records, _seq and time ranges, bytes\n"
             "\n"
             "The event log is DATA/events (--data DATA, $ZQL_DATA, default ./zql-data).\n");
  return status;
}

static int fail(const char *what, int code, const zql_strbuf_t *err)
{
  fprintf(stderr, "zql log %s: error: %s [%s]\n", what, err->len ? err->buf : zql_strerror(code),
          zql_err_code_str(code));
  return 1;
}

static int cmd_check(const zql_cli_t *cli, bool repair)
{
  zql_strbuf_t report = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  zql_evlog_check_result_t res;
  int rc = zql_evlog_check(cli->data_dir, repair, &report, &res, &err);
  fwrite(report.buf, 1, report.len, stdout);
  int status;
  if (rc < 0) {
    status = fail("check", rc, &err);
  } else {
    unsigned left = res.problems - res.repaired;
    if (cli->verbosity >= 0)
      printf("%u segments, %" PRIu64 " records: %s%s\n", res.segments, res.records,
             left ? "" : "ok",
             res.writer_active ? " (a writer is active)" : "");
    if (left) {
      fprintf(stderr, "zql log check: error: %u problem%s in '%s/events'%s [%s]\n", left,
              left == 1 ? "" : "s", cli->data_dir,
              repair ? "" : "; zql log check --repair fixes torn tails", zql_err_code_str(ZQL_E_CORRUPT));
    }
    status = left ? 1 : 0;
  }
  zql_strbuf_release(&report);
  zql_strbuf_release(&err);
  return status;
}

static void fmt_ts(char *buf, size_t n, int64_t ms)
{
  if (ms == INT64_MAX || ms == INT64_MIN) {
    snprintf(buf, n, "-");
    return;
  }
  time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int msec = (int)(ms - (int64_t)secs * 1000);
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) {
    snprintf(buf, n, "%" PRId64, ms);
    return;
  }
  snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
}

static int cmd_stat(const zql_cli_t *cli)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_reader_t *r;
  int rc = zql_evlog_reader_open(cli->data_dir, &r, &err);
  if (rc < 0) {
    int st = fail("stat", rc, &err);
    zql_strbuf_release(&err);
    return st;
  }
  printf("%-25s %-6s %10s %20s %20s %-24s %-24s %12s\n", "segment", "state", "records",
         "first_seq", "last_seq", "min_timestamp", "max_timestamp", "bytes");
  uint64_t records = 0, bytes = 0;
  int64_t min_ts = INT64_MAX, max_ts = INT64_MIN;
  size_t n = zql_evlog_reader_nsegments(r);
  for (size_t i = 0; i < n; i++) {
    const zql_evlog_seginfo_t *s = zql_evlog_reader_segment(r, i);
    char a[80], b[80];
    fmt_ts(a, sizeof a, s->min_ts);
    fmt_ts(b, sizeof b, s->max_ts);
    printf("%-25s %-6s %10" PRIu64 " %20" PRId64 " %20" PRId64 " %-24s %-24s %12" PRIu64 "\n",
           s->name, s->sealed ? "sealed" : "open", s->count, s->first_seq, s->last_seq, a, b,
           s->bytes);
    records += s->count;
    bytes += s->bytes;
    if (s->count && s->min_ts < min_ts)
      min_ts = s->min_ts;
    if (s->count && s->max_ts > max_ts)
      max_ts = s->max_ts;
  }
  char a[80], b[80];
  fmt_ts(a, sizeof a, min_ts);
  fmt_ts(b, sizeof b, max_ts);
  char nseg[32];
  snprintf(nseg, sizeof nseg, "%zu", n);
  printf("%-25s %-6s %10" PRIu64 " %20" PRId64 " %20" PRId64 " %-24s %-24s %12" PRIu64 "\n",
         "total", nseg, records, zql_evlog_reader_first_seq(r), zql_evlog_reader_last_seq(r), a, b,
         bytes);
  zql_evlog_reader_close(r);
  zql_strbuf_release(&err);
  return 0;
}

int zql_cmd_log(const zql_cli_t *cli, int argc, char **argv)
{
  if (argc < 2)
    return usage(stderr, 2);
  const char *sub = argv[1];
  if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0)
    return usage(stdout, 0);
  bool repair = false;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--repair") == 0 && strcmp(sub, "check") == 0) {
      repair = true;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      return usage(stdout, 0);
    } else {
      fprintf(stderr, "zql log %s: unexpected argument '%s'\n", sub, argv[i]);
      return usage(stderr, 2);
    }
  }
  if (strcmp(sub, "check") == 0)
    return cmd_check(cli, repair);
  if (strcmp(sub, "stat") == 0)
    return cmd_stat(cli);
  fprintf(stderr, "zql log: unknown subcommand '%s'\n", sub);
  return usage(stderr, 2);
}
