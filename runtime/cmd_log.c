/*
 * cmd_log.c -- `zql log check [--repair]` and `zql log stat`: maintenance of the event
 * log (runtime services, a subcommand of the zql CLI; see runtime/cli.h).
 *
 *   zql log check [--repair]   verify every CRC, header and index of DATA/events; print
 *                              one line per problem (file and offset); exit 1 when any
 *                              problem remains, 0 when the log is sound (or repaired)
 *   zql log retain DURATION|SIZE   drop whole sealed segments whose events are all older
 *                              than DURATION (30d, 12h, 1w2d) or, oldest first, while the
 *                              log is larger than SIZE (500MB, 2GiB, 1T); also --retain X
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

#include <ctype.h>
#include <time.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/cli.h"
#include "runtime/evlog.h"


static int usage(FILE *f, int status)
{
  fprintf(f, "usage: zql log check [--repair]\n"
             "       zql log stat\n"
             "       zql log retain DURATION|SIZE\n"
             "\n"
             "  check     verify every record CRC, segment header and index of the event log;\n"
             "            exit 1 when a problem is found\n"
             "  --repair  truncate a torn tail left by a crash (never changes sealed data)\n"
             "  stat      list the segments: records, _seq and time ranges, bytes\n"
             "  retain    drop whole sealed segments older than DURATION (30d, 12h, 1w2d) or,\n"
             "            oldest first, while the log is larger than SIZE (500MB, 2GiB)\n"
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

int zql_parse_retain(const char *s, int64_t *max_age_ms, uint64_t *max_bytes)
{
  static const struct {
    const char *unit;
    int64_t ms;
  } times[] = {{"w", 604800000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
               {"ms", 1}};
  static const struct {
    const char *unit;
    uint64_t bytes;
  } sizes[] = {{"B", 1},           {"K", 1024},       {"KB", 1000},          {"KIB", 1024},
               {"M", 1 << 20},     {"MB", 1000000},   {"MIB", 1 << 20},      {"G", 1 << 30},
               {"GB", 1000000000}, {"GIB", 1 << 30},  {"T", 1ull << 40},     {"TB", 1000000000000ull},
               {"TIB", 1ull << 40}};
  *max_age_ms = 0;
  *max_bytes = 0;
  /* a size: digits then one size unit */
  const char *p = s;
  uint64_t n = 0;
  while (isdigit((unsigned char)*p)) {
    if (n > UINT64_MAX / 10 - 10)
      return -1;
    n = n * 10 + (uint64_t)(*p++ - '0');
  }
  if (p == s)
    return -1;
  char unit[8];
  size_t k = 0;
  for (const char *u = p; *u && k < sizeof unit - 1; u++)
    unit[k++] = (char)toupper((unsigned char)*u);
  unit[k] = '\0';
  if (strlen(p) < sizeof unit) {
    for (size_t i = 0; i < ZQL_ARRAY_LEN(sizes); i++)
      if (strcmp(unit, sizes[i].unit) == 0 && strcmp(p, "m") != 0 && strcmp(p, "ms") != 0 &&
          strcmp(p, "s") != 0) {
        if (n == 0 || n > UINT64_MAX / sizes[i].bytes)
          return -1;
        *max_bytes = n * sizes[i].bytes;
        return 0;
      }
  }
  /* a duration: parts of digits + unit, largest first (1w2d, 36h, 90m) */
  p = s;
  int64_t total = 0;
  int last = -1;
  while (*p) {
    int64_t v = 0;
    const char *d = p;
    while (isdigit((unsigned char)*p)) {
      if (v > (INT64_MAX - 9) / 10)
        return -1;
      v = v * 10 + (*p++ - '0');
    }
    const char *u = p;
    while (isalpha((unsigned char)*p))
      p++;
    int which = -1;
    for (int i = 0; i < (int)ZQL_ARRAY_LEN(times); i++)
      if ((size_t)(p - u) == strlen(times[i].unit) && strncmp(u, times[i].unit, (size_t)(p - u)) == 0)
        which = i;
    if (p == d || u == d || which <= last || v > INT64_MAX / times[which].ms ||
        total > INT64_MAX - v * times[which].ms)
      return -1;
    last = which;
    total += v * times[which].ms;
  }
  if (total <= 0)
    return -1;
  *max_age_ms = total;
  return 0;
}

static int cmd_retain(const zql_cli_t *cli, const char *spec)
{
  int64_t age;
  uint64_t bytes;
  if (zql_parse_retain(spec, &age, &bytes) != 0) {
    fprintf(stderr, "zql log retain: invalid limit '%s': write a duration (30d, 12h, 1w2d) or "
                    "a size (500MB, 2GiB)\n", spec);
    return 2;
  }
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_t *w;
  int rc = zql_evlog_open(cli->data_dir, NULL, &w, &err);
  if (rc != 0) {
    int st = fail("retain", rc, &err);
    zql_strbuf_release(&err);
    return st;
  }
  int dropped = 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  rc = zql_evlog_retain(w, age, bytes, now_ms, &dropped, &err);
  int st = rc != 0 ? fail("retain", rc, &err) : 0;
  zql_strbuf_reset(&err);
  if (zql_evlog_close(w, &err) != 0 && st == 0)
    st = fail("retain", ZQL_E_IO, &err);
  if (st == 0 && cli->verbosity >= 0)
    printf("dropped %d sealed segment%s\n", dropped, dropped == 1 ? "" : "s");
  zql_strbuf_release(&err);
  return st;
}

int zql_cmd_log(const zql_cli_t *cli, int argc, char **argv)
{
  if (argc < 2)
    return usage(stderr, 2);
  const char *sub = argv[1];
  if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0)
    return usage(stdout, 0);
  bool repair = false;
  const char *retain = NULL;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--repair") == 0 && strcmp(sub, "check") == 0) {
      repair = true;
    } else if (strcmp(sub, "retain") == 0 && strcmp(argv[i], "--retain") == 0 && i + 1 < argc &&
               !retain) {
      retain = argv[++i];
    } else if (strcmp(sub, "retain") == 0 && argv[i][0] != '-' && !retain) {
      retain = argv[i];
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
  if (strcmp(sub, "retain") == 0) {
    if (!retain) {
      fprintf(stderr, "zql log retain: give a duration or a size, such as 30d or 10GB\n");
      return usage(stderr, 2);
    }
    return cmd_retain(cli, retain);
  }
  fprintf(stderr, "zql log: unknown subcommand '%s'\n", sub);
  return usage(stderr, 2);
}
