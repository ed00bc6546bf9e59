/*
 * evlog-writer.c -- test helper of tests/dist/t0100-evlog-crash.sh: a real process that
 * writes, recovers and verifies an event log (runtime/evlog.h), to be killed with SIGKILL.
 *
 *   evlog-writer append DIR ACKS POLICY SEED   append batches forever (POLICY always|batch|
 *                                              none); after each append returns, write the
 *                                              batch's last _seq as a line to ACKS
 *   evlog-writer recover DIR                   open the writer (recovery), print its notes
 *   evlog-writer verify DIR ACKS               every record r has _id == k == r._seq, the
 *                                              _seq are dense, and the last acknowledged
 *                                              _seq of ACKS is present
 *   evlog-writer log check|stat [--repair]     zql_cmd_log with --data DIR from $ZQL_DATA
 *
 * Each event is {k: <the _seq it must get>, pad: "..."}: the writer knows its next _seq
 * (it is the only writer), so "k == _seq" proves every event is present exactly once and
 * in order. Segments are small (32 KiB) so that kills land in rolls and seals too.
 * Exit status: 0 fine, 1 verification failed or error, 3 the log is locked.
 */
#include "runtime/base/zql_common.h"

#include <fcntl.h>
#include <unistd.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/cli.h"
#include "runtime/evlog.h"


static int do_append(const char *dir, const char *acks, const char *policy, unsigned seed)
{
  zql_evlog_opts_t o;
  zql_evlog_opts_init(&o);
  o.segment_bytes = 32 * 1024;
  o.index_stride = 16;
  o.sync = strcmp(policy, "always") == 0 ? ZQL_EVLOG_SYNC_ALWAYS
           : strcmp(policy, "none") == 0 ? ZQL_EVLOG_SYNC_NONE
                                         : ZQL_EVLOG_SYNC_BATCH;
  o.sync_interval_us = 2000;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_t *w;
  int rc = zql_evlog_open(dir, &o, &w, &err);
  if (rc < 0) {
    fprintf(stderr, "evlog-writer: %s [%s]\n", err.buf, zql_err_code_str(rc));
    zql_strbuf_release(&err);
    return rc == ZQL_E_LOCKED ? 3 : 1;
  }
  int afd = open(acks, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (afd < 0) {
    perror(acks);
    return 1;
  }
  srand(seed);
  bson_t *docs[32];
  char pad[200];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  for (;;) {
    int64_t next = zql_evlog_last_seq(w) + 1;
    int n = 1 + rand() % 32;
    for (int i = 0; i < n; i++) {
      docs[i] = bson_new();
      BSON_APPEND_INT64(docs[i], "k", next + i);
      const char *p = pad + rand() % 150; /* not inside the macro: it evaluates twice */
      BSON_APPEND_UTF8(docs[i], "pad", p);
    }
    int64_t first;
    rc = zql_evlog_append(w, (const bson_t *const *)docs, (size_t)n, &first, &err);
    for (int i = 0; i < n; i++)
      bson_destroy(docs[i]);
    if (rc < 0 || first != next) {
      fprintf(stderr, "evlog-writer: append: %s (first %" PRId64 ", expected %" PRId64 ")\n",
              err.buf, first, next);
      return 1;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%" PRId64 "\n", first + n - 1);
    if (write(afd, line, (size_t)len) != len)
      return 1;
  }
}

static int do_recover(const char *dir)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT, notes = ZQL_STRBUF_INIT;
  zql_evlog_opts_t o;
  zql_evlog_opts_init(&o);
  o.segment_bytes = 32 * 1024;
  o.notes = &notes;
  zql_evlog_t *w;
  int rc = zql_evlog_open(dir, &o, &w, &err);
  fputs(notes.buf, stdout);
  if (rc < 0) {
    fprintf(stderr, "evlog-writer: %s [%s]\n", err.buf, zql_err_code_str(rc));
    zql_strbuf_release(&err);
    zql_strbuf_release(&notes);
    return rc == ZQL_E_LOCKED ? 3 : 1;
  }
  printf("last _seq %" PRId64 "\n", zql_evlog_last_seq(w));
  rc = zql_evlog_close(w, &err);
  zql_strbuf_release(&err);
  zql_strbuf_release(&notes);
  return rc < 0;
}

static int do_verify(const char *dir, const char *acks)
{
  int64_t acked = 0;
  FILE *f = fopen(acks, "r");
  if (f) {
    char line[64];
    while (fgets(line, sizeof line, f))
      if (strchr(line, '\n')) /* a line cut by the kill is not an acknowledgement */
        acked = strtoll(line, NULL, 10);
    fclose(f);
  }
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_reader_t *r;
  int rc = zql_evlog_reader_open(dir, &r, &err);
  if (rc < 0) {
    fprintf(stderr, "evlog-writer: %s\n", err.buf);
    zql_strbuf_release(&err);
    return 1;
  }
  zql_evlog_cursor_t *c;
  zql_evlog_cursor_open(r, NULL, &c, &err);
  zql_evlog_view_t v[256];
  int64_t expect = 1, n = 0;
  int got, bad = 0;
  while ((got = zql_evlog_cursor_next(c, v, 256, &err)) > 0) {
    for (int i = 0; i < got && !bad; i++) {
      bson_t b;
      bson_iter_t it;
      int64_t id = -1, k = -2;
      if (bson_init_static(&b, v[i].doc, v[i].len) && bson_iter_init_find(&it, &b, "_id"))
        id = bson_iter_int64(&it);
      if (bson_iter_init_find(&it, &b, "k"))
        k = bson_iter_int64(&it);
      if (v[i].seq != expect || id != v[i].seq || k != v[i].seq) {
        fprintf(stderr, "evlog-writer: record %" PRId64 ": _seq %" PRId64 " _id %" PRId64
                " k %" PRId64 "\n", expect, v[i].seq, id, k);
        bad = 1;
      }
      expect++;
      n++;
    }
  }
  if (got < 0) {
    fprintf(stderr, "evlog-writer: %s\n", err.buf);
    bad = 1;
  }
  if (expect - 1 < acked) {
    fprintf(stderr, "evlog-writer: acknowledged _seq %" PRId64 " but the log ends at %" PRId64 "\n",
            acked, expect - 1);
    bad = 1;
  }
  printf("%" PRId64 " records, last acknowledged %" PRId64 "\n", n, acked);
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
  zql_strbuf_release(&err);
  return bad;
}

int main(int argc, char **argv)
{
  if (argc >= 6 && strcmp(argv[1], "append") == 0)
    return do_append(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]));
  if (argc >= 3 && strcmp(argv[1], "recover") == 0)
    return do_recover(argv[2]);
  if (argc >= 4 && strcmp(argv[1], "verify") == 0)
    return do_verify(argv[2], argv[3]);
  if (argc >= 2 && strcmp(argv[1], "log") == 0) {
    zql_cli_t cli = {.data_dir = getenv("ZQL_DATA") ? getenv("ZQL_DATA") : "./zql-data"};
    return zql_cmd_log(&cli, argc - 1, argv + 1);
  }
  fprintf(stderr, "usage: evlog-writer append|recover|verify|log ...\n");
  return 2;
}
