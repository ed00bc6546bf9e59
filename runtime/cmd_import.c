/*
 * cmd_import.c -- `zql import` and `zql export`: files <-> the event log (runtime services).
 *
 *   zql import [--strict] [--format auto|bson|ndjson] [--datetime] [--sync P]
 *              [--retain DURATION|SIZE] FILE...
 *   zql export [--from A] [--to B] [--format bson|ndjson|ndjson-canonical] [--gzip]
 *              [-o FILE]
 *
 * Import reads each FILE ("-" = stdin) through runtime/ioformat.c (mongodump .bson,
 * NDJSON / MongoDB extended JSON, gzip detected) and appends the documents to the event
 * log of the data directory (runtime/evlog.c) in batches of up to BATCH_DOCS documents or
 * BATCH_BYTES bytes, so the group commit pays one fdatasync per batch. A record that does
 * not parse, or that the log refuses (a `timestamp` that is not a date, a document over 16
 * MiB), is reported with its file, line or byte offset and skipped; with --strict the
 * first such record stops the import before anything is appended: every input is
 * validated in a first pass (stdin is spooled to a temporary file for it). A batch the log
 * refuses as a whole is retried document by document to find and report the culprit.
 * On a terminal, stderr shows progress (events, rate, percent and ETA of the input bytes).
 *
 * Export writes the stored documents of a _seq or time range, in _seq order, byte for
 * byte (BSON) or as extended JSON. --from/--to take a _seq (digits) or an ISO-8601 date:
 * --from A --to B selects _seq in [A, B] or timestamps in [A, B).
 */
#include "runtime/base/zql_common.h"

#include <bson/bson.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/cli.h"
#include "runtime/evlog.h"
#include "runtime/gen.h"
#include "runtime/ioformat.h"

#define BATCH_DOCS 4096
#define BATCH_BYTES (8u << 20)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static int usage_fail(const char *cmd, const char *msg, const char *arg)
{
  fprintf(stderr, "zql %s: %s%s%s%s\nTry 'zql %s --help'.\n", cmd, msg, arg ? " '" : "",
          arg ? arg : "", arg ? "'" : "", cmd);
  return EXIT_USAGE;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* {==== import */

typedef struct {
  bson_t *docs[BATCH_DOCS];
  zql_iowhere_t where[BATCH_DOCS];
  size_t n;
  size_t bytes;
} batch_t;

typedef struct {
  const zql_cli_t *cli;
  zql_evlog_t *log;  /* NULL in the --strict validation pass */
  bool strict;
  uint64_t imported, skipped;
  int64_t first_seq, last_seq;
  double started, last_progress;
  uint64_t total_bytes, done_bytes; /* for the ETA: sizes of regular input files */
} import_t;

/* A rejected record. Reader messages already start with "FILE:LINE:" (located = true);
 * the log's refusals get the location here. */
static void report_bad(import_t *im, const zql_iowhere_t *w, const char *msg, bool located)
{
  const char *batch = strstr(msg, " of the batch: ");
  if (!located && strncmp(msg, "event ", 6) == 0 && batch)
    msg = batch + 15; /* the batch was a single document: its index says nothing */
  if (located)
    fprintf(stderr, "zql import: %s\n", msg);
  else if (w->line)
    fprintf(stderr, "zql import: %s:%" PRIu64 ": invalid record: %s\n", w->name, w->line, msg);
  else
    fprintf(stderr, "zql import: %s: offset %" PRIu64 ": invalid record: %s\n", w->name,
            w->offset, msg);
  im->skipped++;
}

static void progress(import_t *im, uint64_t file_bytes, bool final)
{
  if (!im->cli->stderr_tty || im->cli->verbosity < 0)
    return;
  double t = now_s();
  if (!final && t - im->last_progress < 0.25)
    return;
  im->last_progress = t;
  double el = t - im->started;
  double rate = el > 0 ? (double)im->imported / el : 0;
  uint64_t done = im->done_bytes + file_bytes;
  char eta[48] = "";
  if (im->total_bytes > 0 && done > 0 && done <= im->total_bytes && el > 0.5) {
    double left = el * (double)(im->total_bytes - done) / (double)done;
    snprintf(eta, sizeof eta, ", %.0f%%, ETA %.0fs", 100.0 * (double)done / (double)im->total_bytes,
             left);
  }
  fprintf(stderr, "\r%" PRIu64 " events, %.0f events/s%s   %s", im->imported, rate, eta,
          final ? "\n" : "");
}

/* Append a batch; on a refused batch, find and report the bad documents one by one. */
static int flush_batch(import_t *im, batch_t *b, zql_strbuf_t *err)
{
  if (b->n == 0 || !im->log)
    goto done;
  int64_t first;
  zql_strbuf_reset(err);
  int rc = zql_evlog_append(im->log, (const bson_t *const *)b->docs, b->n, &first, err);
  if (rc == 0) {
    if (!im->first_seq)
      im->first_seq = first;
    im->last_seq = first + (int64_t)b->n - 1;
    im->imported += b->n;
  } else if (rc == ZQL_E_BAD_EVENT) {
    for (size_t i = 0; i < b->n; i++) {
      const bson_t *one = b->docs[i];
      zql_strbuf_reset(err);
      rc = zql_evlog_append(im->log, &one, 1, &first, err);
      if (rc == ZQL_E_BAD_EVENT) {
        report_bad(im, &b->where[i], err->buf, false);
        continue;
      }
      if (rc != 0)
        return rc;
      if (!im->first_seq)
        im->first_seq = first;
      im->last_seq = first;
      im->imported++;
    }
  } else {
    return rc;
  }
done:
  for (size_t i = 0; i < b->n; i++)
    bson_destroy(b->docs[i]);
  b->n = 0;
  b->bytes = 0;
  return 0;
}

/* One input file: read, batch, append (or only validate when im->log is NULL). */
static int import_file(import_t *im, const char *path, const zql_ioreader_opts_t *ro,
                       batch_t *b, zql_strbuf_t *err)
{
  zql_ioreader_t *r;
  zql_strbuf_reset(err);
  int rc = zql_ioreader_open(path, ro, &r, err);
  if (rc != 0) {
    fprintf(stderr, "zql import: %s\n", err->buf);
    return rc;
  }
  for (;;) {
    const bson_t *doc;
    zql_iowhere_t w;
    zql_strbuf_reset(err);
    rc = zql_ioreader_next(r, &doc, &w, err);
    if (rc == 0)
      break;
    if (rc < 0) {
      if (rc == ZQL_E_IO || rc == ZQL_E_NOMEM) {
        fprintf(stderr, "zql import: %s\n", err->buf);
        break;
      }
      report_bad(im, &w, err->buf, true);
      if (im->strict)
        break;
      rc = 0;
      continue;
    }
    if (!im->log) { /* validation pass: the document must also be loggable */
      bson_iter_t it;
      if (doc->len > ZQL_IO_MAX_DOC) {
        report_bad(im, &w, "document larger than 16 MiB", false);
        rc = ZQL_E_BAD_EVENT;
        break;
      }
      if (bson_iter_init_find(&it, doc, "timestamp") && !BSON_ITER_HOLDS_DATE_TIME(&it) &&
          !BSON_ITER_HOLDS_TIMESTAMP(&it)) {
        report_bad(im, &w, "field 'timestamp' is not a BSON date or Timestamp", false);
        rc = ZQL_E_BAD_EVENT;
        break;
      }
      im->imported++;
      continue;
    }
    bson_t *copy = bson_copy(doc);
    if (!copy) {
      rc = ZQL_E_NOMEM;
      break;
    }
    b->docs[b->n] = copy;
    b->where[b->n] = w;
    b->where[b->n].name = path;
    b->n++;
    b->bytes += doc->len;
    if (b->n == BATCH_DOCS || b->bytes >= BATCH_BYTES) {
      rc = flush_batch(im, b, err);
      if (rc != 0) {
        fprintf(stderr, "zql import: %s\n", err->buf);
        break;
      }
    }
    progress(im, zql_ioreader_bytes_in(r), false);
  }
  if (rc >= 0 && im->log) {
    rc = flush_batch(im, b, err);
    if (rc != 0)
      fprintf(stderr, "zql import: %s\n", err->buf);
  }
  im->done_bytes += zql_ioreader_bytes_in(r);
  zql_ioreader_close(r);
  return rc < 0 ? rc : 0;
}

/* Copy stdin to a temporary file (so --strict can read it twice); returns its path. */
static char *spool_stdin(const char *dir, zql_strbuf_t *err)
{
  char *path = NULL;
  zql_strbuf_t p = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&p, "%s/.import-XXXXXX", dir);
  path = zql_strbuf_detach(&p, NULL);
  if (!path)
    return NULL;
  (void)mkdir(dir, 0755);
  int fd = mkstemp(path);
  if (fd < 0) {
    zql_strbuf_addf(err, "cannot create a spool file in '%s': %s", dir, strerror(errno));
    zql_free(path);
    return NULL;
  }
  char buf[65536];
  ssize_t got;
  while ((got = read(STDIN_FILENO, buf, sizeof buf)) > 0) {
    if (write(fd, buf, (size_t)got) != got) {
      zql_strbuf_addf(err, "cannot spool stdin: %s", strerror(errno));
      close(fd);
      unlink(path);
      zql_free(path);
      return NULL;
    }
  }
  close(fd);
  return path;
}

static void import_usage(FILE *f)
{
  fprintf(f,
          "usage: zql [--data DIR] import [OPTIONS] FILE...\n"
          "\n"
          "Append events to the event log of the data directory. FILE is a mongodump .bson\n"
          "file, NDJSON or MongoDB extended JSON (one document per line), possibly gzipped;\n"
          "\"-\" reads stdin. Invalid records are reported with their line or byte offset and\n"
          "skipped.\n"
          "\n"
          "Options:\n"
          "  --strict               stop at the first invalid record, importing nothing\n"
          "  --format auto|bson|ndjson  the input format (default: detected)\n"
          "  --datetime             turn Zarkov's {\"$datetime\": seconds} into dates\n"
          "  --sync always|batch|none   fsync policy while importing (default batch)\n"
          "  --retain DURATION|SIZE then drop sealed segments older than DURATION (30d) or,\n"
          "                         oldest first, beyond SIZE (10GB); see zql log retain\n");
}

int zql_cmd_import(const zql_cli_t *cli, int argc, char **argv)
{
  zql_ioreader_opts_t ro = ZQL_IOREADER_OPTS_INIT;
  zql_evlog_opts_t lo;
  zql_evlog_opts_init(&lo);
  bool strict = false;
  const char *retain = NULL;
  int64_t retain_age = 0;
  uint64_t retain_bytes = 0;
  char **files = zql_calloc((size_t)argc + 1, sizeof *files);
  int nfiles = 0;
  if (!files)
    return EXIT_FAIL;
  int status = EXIT_OK;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      import_usage(stdout);
      goto out;
    } else if (strcmp(a, "--strict") == 0) {
      strict = true;
    } else if (strcmp(a, "--datetime") == 0) {
      ro.datetime = true;
    } else if (strcmp(a, "--retain") == 0) {
      if (i + 1 >= argc || zql_parse_retain(argv[i + 1], &retain_age, &retain_bytes) != 0) {
        status = usage_fail("import", "--retain needs a duration (30d) or a size (10GB)",
                            i + 1 < argc ? argv[i + 1] : NULL);
        goto out;
      }
      retain = argv[++i];
    } else if (strcmp(a, "--format") == 0 || strcmp(a, "--sync") == 0) {
      if (i + 1 >= argc) {
        status = usage_fail("import", "missing value after", a);
        goto out;
      }
      const char *v = argv[++i];
      if (a[2] == 'f') {
        if (zql_iofmt_parse(v, &ro.format) != 0 || ro.format == ZQL_IOFMT_NDJSON_CANONICAL) {
          status = usage_fail("import", "unknown format", v);
          goto out;
        }
      } else if (strcmp(v, "always") == 0) {
        lo.sync = ZQL_EVLOG_SYNC_ALWAYS;
      } else if (strcmp(v, "batch") == 0) {
        lo.sync = ZQL_EVLOG_SYNC_BATCH;
      } else if (strcmp(v, "none") == 0) {
        lo.sync = ZQL_EVLOG_SYNC_NONE;
      } else {
        status = usage_fail("import", "unknown sync policy", v);
        goto out;
      }
    } else if (a[0] == '-' && a[1] != '\0') {
      status = usage_fail("import", "unknown option", a);
      goto out;
    } else {
      files[nfiles++] = argv[i];
    }
  }
  if (nfiles == 0) {
    status = usage_fail("import", "no input files (\"-\" reads stdin)", NULL);
    goto out;
  }

  zql_strbuf_t err = ZQL_STRBUF_INIT;
  import_t im = {.cli = cli, .strict = strict, .started = now_s()};
  batch_t *b = zql_calloc(1, sizeof *b);
  char *spooled = NULL;
  if (!b) {
    status = EXIT_FAIL;
    goto done;
  }
  for (int i = 0; i < nfiles; i++) {
    struct stat st;
    if (strcmp(files[i], "-") != 0 && stat(files[i], &st) == 0 && S_ISREG(st.st_mode))
      im.total_bytes += (uint64_t)st.st_size;
  }
  if (strict) {
    for (int i = 0; i < nfiles && status == EXIT_OK; i++) {
      if (strcmp(files[i], "-") == 0) {
        if (spooled) {
          status = usage_fail("import", "stdin given twice", NULL);
          break;
        }
        spooled = spool_stdin(cli->data_dir, &err);
        if (!spooled) {
          fprintf(stderr, "zql import: %s\n", err.buf);
          status = EXIT_FAIL;
          break;
        }
        files[i] = spooled;
      }
      if (import_file(&im, files[i], &ro, b, &err) != 0 || im.skipped > 0)
        status = EXIT_FAIL;
    }
    if (status != EXIT_OK) {
      fprintf(stderr, "zql import: --strict: nothing imported\n");
      goto done;
    }
    im.imported = 0;
    im.done_bytes = 0;
  }
  zql_strbuf_reset(&err);
  lo.notes = &err;
  int rc = zql_evlog_open(cli->data_dir, &lo, &im.log, &err);
  if (rc != 0) {
    fprintf(stderr, "zql import: %s\n", err.buf);
    status = EXIT_FAIL;
    goto done;
  }
  if (err.len && cli->verbosity >= 0)
    fprintf(stderr, "zql import: recovered the log: %s", err.buf);
  for (int i = 0; i < nfiles; i++) {
    if (import_file(&im, files[i], &ro, b, &err) != 0) {
      status = EXIT_FAIL;
      break;
    }
  }
  progress(&im, 0, true);
  if (retain && status == EXIT_OK) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int dropped = 0;
    zql_strbuf_reset(&err);
    if (zql_evlog_retain(im.log, retain_age, retain_bytes,
                         (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, &dropped, &err) != 0) {
      fprintf(stderr, "zql import: --retain %s: %s\n", retain, err.buf);
      status = EXIT_FAIL;
    } else if (dropped && cli->verbosity >= 0) {
      fprintf(stderr, "zql import: --retain %s: dropped %d sealed segments\n", retain, dropped);
    }
  }
  zql_strbuf_reset(&err);
  if (zql_evlog_close(im.log, &err) != 0) {
    fprintf(stderr, "zql import: %s\n", err.buf);
    status = EXIT_FAIL;
  }
  if (cli->verbosity >= 0) {
    if (im.imported)
      fprintf(stderr, "zql import: imported %" PRIu64 " events (_seq %" PRId64 "..%" PRId64 ")",
              im.imported, im.first_seq, im.last_seq);
    else
      fprintf(stderr, "zql import: imported 0 events");
    fprintf(stderr, ", skipped %" PRIu64 " invalid\n", im.skipped);
  }
done:
  if (spooled) {
    unlink(spooled);
    zql_free(spooled);
  }
  zql_free(b);
  zql_strbuf_release(&err);
out:
  zql_free(files);
  return status;
}

/* }==== */

/* {==== export */

/* A --from/--to value: digits are a _seq, anything else an ISO-8601 date (ms). */
static int parse_bound(const char *s, bool *is_seq, int64_t *v)
{
  char *end;
  errno = 0;
  long long n = strtoll(s, &end, 10);
  if (*s && *end == '\0' && errno == 0) {
    *is_seq = true;
    *v = n;
    return 0;
  }
  if (zql_gen_parse_date(s, v) != 0)
    return -1;
  *is_seq = false;
  return 0;
}

static void export_usage(FILE *f)
{
  fprintf(f,
          "usage: zql [--data DIR] export [OPTIONS]\n"
          "\n"
          "Write the events of the data directory's log, in _seq order.\n"
          "\n"
          "Options:\n"
          "  --from A, --to B       a _seq range [A, B] (integers) or a time range [A, B)\n"
          "                         (ISO-8601 dates such as 2024-01-01T00:00:00Z)\n"
          "  --format bson|ndjson|ndjson-canonical   output format (default ndjson; bson\n"
          "                         is mongodump's format, readable by bsondump)\n"
          "  --gzip                 compress the output\n"
          "  -o FILE                write to FILE instead of stdout\n");
}

int zql_cmd_export(const zql_cli_t *cli, int argc, char **argv)
{
  zql_iowriter_opts_t wo = {ZQL_IOFMT_NDJSON, false, 0};
  const char *out = "-";
  zql_evlog_range_t range;
  zql_evlog_range_all(&range);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      export_usage(stdout);
      return EXIT_OK;
    } else if (strcmp(a, "--gzip") == 0) {
      wo.gzip = true;
    } else if (strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0 ||
               strcmp(a, "--format") == 0 || strcmp(a, "-o") == 0) {
      if (i + 1 >= argc)
        return usage_fail("export", "missing value after", a);
      const char *v = argv[++i];
      if (strcmp(a, "-o") == 0) {
        out = v;
      } else if (strcmp(a, "--format") == 0) {
        if (zql_iofmt_parse(v, &wo.format) != 0 || wo.format == ZQL_IOFMT_AUTO)
          return usage_fail("export", "unknown format", v);
      } else {
        bool is_seq;
        int64_t x;
        if (parse_bound(v, &is_seq, &x) != 0)
          return usage_fail("export", "not a _seq or an ISO-8601 date:", v);
        bool from = a[2] == 'f';
        if (is_seq && from)
          range.seq_lo = x - 1;
        else if (is_seq)
          range.seq_hi = x;
        else if (from)
          range.ts_lo = x;
        else
          range.ts_hi = x;
      }
    } else {
      return usage_fail("export", "unknown argument", a);
    }
  }

  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_reader_t *r = NULL;
  zql_evlog_cursor_t *c = NULL;
  zql_iowriter_t *w = NULL;
  int status = EXIT_FAIL;
  uint64_t n = 0;
  if (zql_evlog_reader_open(cli->data_dir, &r, &err) != 0 ||
      zql_evlog_cursor_open(r, &range, &c, &err) != 0 ||
      zql_iowriter_open(out, &wo, &w, &err) != 0) {
    fprintf(stderr, "zql export: %s\n", err.buf);
    goto done;
  }
  zql_evlog_view_t views[256];
  int got;
  while ((got = zql_evlog_cursor_next(c, views, ZQL_ARRAY_LEN(views), &err)) > 0) {
    for (int i = 0; i < got; i++) {
      bson_t doc;
      if (!bson_init_static(&doc, views[i].doc, views[i].len)) {
        fprintf(stderr, "zql export: _seq %" PRId64 ": invalid BSON in the log\n", views[i].seq);
        goto done;
      }
      if (zql_iowriter_write(w, &doc, &err) != 0) {
        fprintf(stderr, "zql export: %s\n", err.buf);
        goto done;
      }
      n++;
    }
  }
  if (got < 0) {
    fprintf(stderr, "zql export: %s\n", err.buf);
    goto done;
  }
  status = EXIT_OK;
done:
  if (w && zql_iowriter_close(w, &err) != 0 && status == EXIT_OK) {
    fprintf(stderr, "zql export: %s\n", err.buf);
    status = EXIT_FAIL;
  }
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
  if (status == EXIT_OK && cli->verbosity > 0)
    fprintf(stderr, "zql export: %" PRIu64 " events\n", n);
  zql_strbuf_release(&err);
  return status;
}

/* }==== */
