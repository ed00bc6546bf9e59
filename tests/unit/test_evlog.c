/*
 * test_evlog.c -- unit tests of the event log (runtime/evlog*.c, runtime services).
 *
 * Each test works in a fresh temporary data directory. Covered: record framing and the
 * segment header; append and reopen with dense _seq; the _id / timestamp rules and the
 * atomic rejection of a bad batch; the 16 MiB limit; rolling, sealing and the sparse index;
 * cursors by _seq and by time, with pruning (a corrupt segment outside the range is never
 * read); chunking; torn-tail recovery on open and by check --repair; an interrupted seal;
 * corruption in a sealed segment (named file and offset); the writer lock; retention by
 * age and by size; concurrent appenders sharing fdatasyncs.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/crc32c.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"
#include "runtime/evlog_int.h"

/* {==== helpers ====} */

static char tmpdir[256];

static int setup_dir(void **state)
{
  snprintf(tmpdir, sizeof tmpdir, "%s/zql-evlog.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir))
    return -1;
  return 0;
}

static int teardown_dir(void **state)
{
  char path[512];
  snprintf(path, sizeof path, "%s/events", tmpdir);
  DIR *d = opendir(path);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (de->d_name[0] == '.')
        continue;
      char f[800];
      snprintf(f, sizeof f, "%s/%s", path, de->d_name);
      unlink(f);
    }
    closedir(d);
    rmdir(path);
  }
  rmdir(tmpdir);
  return 0;
}

#define EVTEST(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

static int64_t fixed_clock(void *arg)
{
  return *(int64_t *)arg;
}

static int64_t clock_now = 1300000000000; /* 2011-03-13 */

static zql_evlog_t *open_log(zql_evlog_sync_t sync, uint64_t seg_bytes, uint32_t stride,
                             zql_strbuf_t *notes)
{
  zql_evlog_opts_t o;
  zql_evlog_opts_init(&o);
  o.sync = sync;
  if (seg_bytes)
    o.segment_bytes = seg_bytes;
  if (stride)
    o.index_stride = stride;
  o.clock_ms = fixed_clock;
  o.clock_arg = &clock_now;
  o.notes = notes;
  zql_evlog_t *w = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_evlog_open(tmpdir, &o, &w, &err);
  if (rc != 0)
    fprintf(stderr, "open: %s\n", err.buf);
  assert_int_equal(rc, 0);
  zql_strbuf_release(&err);
  return w;
}

/* Append `n` events {n: i, timestamp: ts0 + i*step} one batch; returns the first _seq. */
static int64_t append_n(zql_evlog_t *w, int n, int64_t ts0, int64_t step, int base)
{
  bson_t *docs[64];
  assert_true(n <= 64);
  for (int i = 0; i < n; i++) {
    docs[i] = bson_new();
    BSON_APPEND_INT32(docs[i], "n", base + i);
    BSON_APPEND_UTF8(docs[i], "pad", "some padding to make the records a bit longer");
    BSON_APPEND_DATE_TIME(docs[i], "timestamp", ts0 + (int64_t)i * step);
  }
  int64_t first = 0;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_evlog_append(w, (const bson_t *const *)docs, (size_t)n, &first, &err);
  if (rc != 0)
    fprintf(stderr, "append: %s\n", err.buf);
  assert_int_equal(rc, 0);
  zql_strbuf_release(&err);
  for (int i = 0; i < n; i++)
    bson_destroy(docs[i]);
  return first;
}

/* Read (lo, hi] x [t0, t1) into seqs (up to max); returns the count, or the error. */
static int scan(zql_evlog_reader_t *r, int64_t lo, int64_t hi, int64_t t0, int64_t t1,
                int64_t *seqs, int max, zql_strbuf_t *err)
{
  zql_evlog_range_t q = {lo, hi, t0, t1};
  zql_evlog_cursor_t *c;
  assert_int_equal(zql_evlog_cursor_open(r, &q, &c, err), 0);
  int total = 0, got;
  zql_evlog_view_t v[7];
  while ((got = zql_evlog_cursor_next(c, v, 7, err)) > 0) {
    for (int i = 0; i < got; i++) {
      bson_t b;
      assert_true(bson_init_static(&b, v[i].doc, v[i].len));
      if (total < max)
        seqs[total] = v[i].seq;
      total++;
    }
  }
  zql_evlog_cursor_close(c);
  return got < 0 ? got : total;
}

static int count_files(const char *suffix)
{
  char path[512];
  snprintf(path, sizeof path, "%s/events", tmpdir);
  DIR *d = opendir(path);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name), s = strlen(suffix);
    n += l > s && strcmp(de->d_name + l - s, suffix) == 0;
  }
  closedir(d);
  return n;
}

static void seg_file(char *buf, size_t n, int64_t first, bool sealed)
{
  char name[32];
  zql_evlog_name(name, first, sealed);
  snprintf(buf, n, "%s/events/%s", tmpdir, name);
}

/* XOR the byte at offset `at` of file `path` with mask (damage for the tests). */
static void flip_byte(const char *path, off_t at, uint8_t mask)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= mask;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

/* Set the last-record length of hint file `path` (offset 60 of its index block, which
 * starts the file) to len, with the index block's CRC made good again: a hint as a writer
 * that did not keep that length (len 0) or a wrong one wrote it. */
static void set_hint_last_len(const char *path, uint32_t len)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  uint8_t *b = malloc((size_t)st.st_size);
  assert_non_null(b);
  assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
  uint32_t body = evlog_ld32(b + st.st_size - EVLOG_FOOTER_SIZE + 8) - EVLOG_IDX_TAIL;
  evlog_st32(b + 60, len);
  evlog_st32(b + body, zql_crc32c(b, body));
  assert_int_equal(pwrite(fd, b, (size_t)st.st_size, 0), st.st_size);
  close(fd);
  free(b);
}

/* {==== tests ====} */

static void test_framing(void **state)
{
  uint8_t buf[128];
  bson_t *d = BCON_NEW("a", BCON_INT32(1));
  memcpy(buf + EVLOG_FRAME_HDR, bson_get_data(d), d->len);
  zql_evlog_frame_head(buf, 42, -5, d->len);
  size_t flen = EVLOG_FRAME_HDR + d->len;
  assert_int_equal(evlog_ld32(buf), 16 + d->len);
  zql_evlog_view_t v;
  size_t got;
  const char *why = NULL;
  assert_int_equal(zql_evlog_frame_parse(buf, flen, 42, true, &v, &got, &why), EVLOG_FRAME_OK);
  assert_int_equal(got, flen);
  assert_int_equal(v.seq, 42);
  assert_int_equal(v.ts, -5);
  assert_int_equal(v.len, d->len);
  assert_memory_equal(v.doc, bson_get_data(d), d->len);
  /* any shorter prefix is incomplete */
  for (size_t n = 0; n < flen; n++)
    assert_int_equal(zql_evlog_frame_parse(buf, n, 42, true, &v, &got, &why), EVLOG_FRAME_SHORT);
  /* wrong _seq, flipped bits anywhere */
  assert_int_equal(zql_evlog_frame_parse(buf, flen, 43, true, &v, &got, &why), EVLOG_FRAME_BAD);
  for (size_t i = 0; i < flen; i++) {
    buf[i] ^= 0x10;
    assert_int_not_equal(zql_evlog_frame_parse(buf, flen, 42, true, &v, &got, &why), EVLOG_FRAME_OK);
    buf[i] ^= 0x10;
  }
  bson_destroy(d);

  uint8_t hdr[EVLOG_HDR_SIZE];
  zql_evlog_header_build(hdr, 4711);
  assert_memory_equal(hdr, "ZQLEVSEG", 8);
  int64_t first = 0;
  assert_int_equal(zql_evlog_header_parse(hdr, sizeof hdr, &first, &why), 0);
  assert_int_equal(first, 4711);
  hdr[17] ^= 1;
  assert_int_equal(zql_evlog_header_parse(hdr, sizeof hdr, &first, &why), -1);
  assert_int_equal(zql_evlog_header_parse(hdr, 31, &first, &why), -1);
  char name[32];
  zql_evlog_name(name, 1, true);
  assert_string_equal(name, "00000000000000000001.seg");
  zql_evlog_name(name, 12345, false);
  assert_string_equal(name, "00000000000000012345.open");
}

static void test_append_reopen(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_ALWAYS, 0, 0, NULL);
  assert_int_equal(zql_evlog_last_seq(w), 0);
  assert_int_equal(append_n(w, 3, 1000, 1, 0), 1);
  assert_int_equal(append_n(w, 2, 1000, 1, 3), 4);
  assert_int_equal(zql_evlog_last_seq(w), 5);
  assert_int_equal(zql_evlog_durable_seq(w), 5); /* always: durable when append returns */
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  w = open_log(ZQL_EVLOG_SYNC_BATCH, 0, 0, NULL);
  assert_int_equal(zql_evlog_last_seq(w), 5);
  assert_int_equal(zql_evlog_durable_seq(w), 5); /* what was there at open is on disk */
  assert_int_equal(append_n(w, 1, 1000, 1, 5), 6);
  /* batch: the background syncer makes it durable within the interval (10 ms) */
  for (int i = 0; i < 500 && zql_evlog_durable_seq(w) < 6; i++)
    usleep(2000);
  assert_int_equal(zql_evlog_durable_seq(w), 6);
  assert_int_equal(zql_evlog_close(w, NULL), 0);

  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  int64_t seqs[16];
  assert_int_equal(scan(r, INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX, seqs, 16, NULL), 6);
  for (int i = 0; i < 6; i++)
    assert_int_equal(seqs[i], i + 1);
  assert_int_equal(zql_evlog_reader_first_seq(r), 1);
  assert_int_equal(zql_evlog_reader_last_seq(r), 6);
  assert_int_equal(zql_evlog_reader_nsegments(r), 1);
  assert_false(zql_evlog_reader_segment(r, 0)->sealed);
  zql_evlog_reader_close(r);
}

static void test_id_timestamp_rules(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  bson_t *keep = BCON_NEW("_id", BCON_UTF8("mine"), "timestamp", BCON_DATE_TIME(777));
  bson_t *bare = BCON_NEW("x", BCON_INT32(1));
  bson_t *tsonly = BCON_NEW("timestamp", BCON_TIMESTAMP(1300000000, 5));
  const bson_t *docs[] = {keep, bare, tsonly};
  int64_t first;
  assert_int_equal(zql_evlog_append(w, docs, 3, &first, NULL), 0);
  assert_int_equal(first, 1);

  /* a bad timestamp rejects the whole batch, naming the field */
  bson_t *bad = BCON_NEW("timestamp", BCON_UTF8("2011-01-01"));
  const bson_t *batch[] = {bare, bad};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_evlog_append(w, batch, 2, &first, &err), ZQL_E_BAD_EVENT);
  assert_non_null(strstr(err.buf, "'timestamp'"));
  assert_non_null(strstr(err.buf, "event 1"));
  assert_non_null(strstr(err.buf, "string"));
  assert_int_equal(zql_evlog_last_seq(w), 3);
  zql_strbuf_release(&err);
  bson_t *num = BCON_NEW("timestamp", BCON_INT64(5));
  assert_int_equal(zql_evlog_append(w, (const bson_t *[]){num}, 1, &first, NULL), ZQL_E_BAD_EVENT);
  assert_int_equal(zql_evlog_close(w, NULL), 0);

  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  zql_evlog_cursor_t *c;
  assert_int_equal(zql_evlog_cursor_open(r, NULL, &c, NULL), 0);
  zql_evlog_view_t v[4];
  assert_int_equal(zql_evlog_cursor_next(c, v, 4, NULL), 3);
  assert_int_equal(zql_evlog_cursor_next(c, v + 3, 1, NULL), 0);
  bson_t b;
  bson_iter_t it;
  /* 1: kept as is */
  assert_int_equal(v[0].ts, 777);
  assert_true(bson_init_static(&b, v[0].doc, v[0].len));
  assert_true(bson_equal(&b, keep));
  /* 2: _id = _seq first, timestamp = write time last */
  assert_int_equal(v[1].seq, 2);
  assert_int_equal(v[1].ts, clock_now);
  assert_true(bson_init_static(&b, v[1].doc, v[1].len));
  assert_true(bson_validate(&b, BSON_VALIDATE_NONE, NULL));
  assert_true(bson_iter_init(&it, &b) && bson_iter_next(&it));
  assert_string_equal(bson_iter_key(&it), "_id");
  assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT64);
  assert_int_equal(bson_iter_int64(&it), 2);
  assert_true(bson_iter_next(&it));
  assert_string_equal(bson_iter_key(&it), "x");
  assert_true(bson_iter_next(&it));
  assert_string_equal(bson_iter_key(&it), "timestamp");
  assert_int_equal(bson_iter_type(&it), BSON_TYPE_DATE_TIME);
  assert_int_equal(bson_iter_date_time(&it), clock_now);
  assert_false(bson_iter_next(&it));
  /* 3: a BSON Timestamp is accepted: seconds -> ms */
  assert_int_equal(v[2].ts, 1300000000000);
  assert_true(bson_init_static(&b, v[2].doc, v[2].len));
  assert_true(bson_iter_init_find(&it, &b, "_id"));
  assert_int_equal(bson_iter_int64(&it), 3);
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
  bson_destroy(keep);
  bson_destroy(bare);
  bson_destroy(tsonly);
  bson_destroy(bad);
  bson_destroy(num);
}

static void test_size_limit(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  size_t n = ZQL_EVLOG_MAX_DOC - 30;
  uint8_t *blob = calloc(1, n);
  assert_non_null(blob);
  bson_t *big = bson_new();
  BSON_APPEND_BINARY(big, "b", BSON_SUBTYPE_BINARY, blob, (uint32_t)n);
  /* fits alone, but not with _id and timestamp added */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int64_t first;
  assert_true(big->len <= ZQL_EVLOG_MAX_DOC);
  assert_int_equal(zql_evlog_append(w, (const bson_t *[]){big}, 1, &first, &err), ZQL_E_BAD_EVENT);
  assert_non_null(strstr(err.buf, "16 MiB"));
  zql_strbuf_release(&err);
  assert_int_equal(zql_evlog_last_seq(w), 0);
  bson_destroy(big);
  /* exactly the limit is fine */
  big = bson_new();
  BSON_APPEND_INT64(big, "_id", 1);
  BSON_APPEND_DATE_TIME(big, "timestamp", 1);
  uint32_t room = ZQL_EVLOG_MAX_DOC - big->len - (1 + 2 + 4 + 1);
  BSON_APPEND_BINARY(big, "b", BSON_SUBTYPE_BINARY, blob, room);
  assert_int_equal(big->len, ZQL_EVLOG_MAX_DOC);
  assert_int_equal(zql_evlog_append(w, (const bson_t *[]){big}, 1, &first, NULL), 0);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  int64_t seqs[2];
  assert_int_equal(scan(r, 0, 10, INT64_MIN, INT64_MAX, seqs, 2, NULL), 1);
  zql_evlog_reader_close(r);
  bson_destroy(big);
  free(blob);
}

static void test_roll_seal_index(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 4096, 4, NULL);
  for (int b = 0; b < 30; b++)
    assert_int_equal(append_n(w, 7, 100000 + b * 7 * 1000, 1000, b * 7), b * 7 + 1);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  assert_true(count_files(".seg") >= 4);
  assert_int_equal(count_files(".open"), 1);

  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  size_t ns = zql_evlog_reader_nsegments(r);
  int64_t next = 1;
  uint64_t total = 0;
  for (size_t i = 0; i < ns; i++) {
    const zql_evlog_seginfo_t *s = zql_evlog_reader_segment(r, i);
    assert_int_equal(s->first_seq, next);
    assert_int_equal(s->sealed, i + 1 < ns);
    if (s->sealed) {
      assert_true(s->bytes <= 4096);
      assert_true(s->count > 0);
      assert_int_equal(s->min_ts, 100000 + (s->first_seq - 1) * 1000);
      assert_int_equal(s->max_ts, 100000 + (s->last_seq - 1) * 1000);
    }
    next = s->last_seq + 1;
    total += s->count;
  }
  assert_int_equal(total, 210);
  int64_t seqs[256];
  /* by _seq: (50, 120] */
  assert_int_equal(scan(r, 50, 120, INT64_MIN, INT64_MAX, seqs, 256, NULL), 70);
  for (int i = 0; i < 70; i++)
    assert_int_equal(seqs[i], 51 + i);
  /* every start point */
  for (int64_t lo = 0; lo <= 210; lo += 13) {
    int got = scan(r, lo, lo + 5, INT64_MIN, INT64_MAX, seqs, 256, NULL);
    assert_int_equal(got, lo + 5 <= 210 ? 5 : 210 - lo);
    if (got > 0)
      assert_int_equal(seqs[0], lo + 1);
  }
  /* by time: [150000, 160000) is _seq 51..60 */
  assert_int_equal(scan(r, INT64_MIN, INT64_MAX, 150000, 160000, seqs, 256, NULL), 10);
  assert_int_equal(seqs[0], 51);
  assert_int_equal(seqs[9], 60);
  /* both */
  assert_int_equal(scan(r, 55, 100, 150000, 160000, seqs, 256, NULL), 5);
  assert_int_equal(scan(r, 300, 400, INT64_MIN, INT64_MAX, seqs, 256, NULL), 0);
  zql_evlog_reader_close(r);

  zql_evlog_check_result_t res;
  zql_strbuf_t rep = ZQL_STRBUF_INIT;
  assert_int_equal(zql_evlog_check(tmpdir, false, &rep, &res, NULL), 0);
  if (res.problems)
    fprintf(stderr, "%s", rep.buf);
  assert_int_equal(res.problems, 0);
  assert_int_equal(res.records, 210);
  assert_int_equal(res.segments, ns);
  zql_strbuf_release(&rep);
}

static void test_pruning_skips_segments(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 4096, 4, NULL);
  for (int b = 0; b < 20; b++)
    append_n(w, 7, 100000 + b * 7 * 1000, 1000, b * 7);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  /* Damage the records of the first segment: ranges that prune it still work. */
  char path[512];
  seg_file(path, sizeof path, 1, true);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t junk[8] = {0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef};
  assert_int_equal(pwrite(fd, junk, sizeof junk, EVLOG_HDR_SIZE + 100), 8);
  close(fd);
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  int64_t last1 = zql_evlog_reader_segment(r, 0)->last_seq;
  int64_t seqs[200];
  assert_int_equal(scan(r, last1, last1 + 10, INT64_MIN, INT64_MAX, seqs, 200, NULL), 10);
  int64_t t0 = 100000 + last1 * 1000; /* the first timestamp after segment 1 */
  assert_int_equal(scan(r, INT64_MIN, INT64_MAX, t0, t0 + 3000, seqs, 200, NULL), 3);
  /* a range that needs it fails, naming file and offset */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(scan(r, 0, 140, INT64_MIN, INT64_MAX, seqs, 200, &err), ZQL_E_CORRUPT);
  assert_non_null(strstr(err.buf, "00000000000000000001.seg"));
  assert_non_null(strstr(err.buf, "offset "));
  zql_strbuf_release(&err);
  zql_evlog_reader_close(r);
}

/* A reader opened for the records after a _seq indexes the older sealed segments without
 * mapping them: a cursor that enters one maps it then (reading the same records), and
 * one whose file retention removed in between is an error, not a crash. */
static void test_open_after_lazy_map(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 4096, 4, NULL);
  for (int b = 0; b < 20; b++)
    append_n(w, 7, 100000 + b * 7 * 1000, 1000, b * 7);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  zql_evlog_reader_t *r;
  int64_t seqs[200];
  assert_int_equal(zql_evlog_reader_open_after(tmpdir, 120, &r, NULL), 0);
  assert_true(zql_evlog_reader_nsegments(r) >= 4);
  assert_int_equal(zql_evlog_reader_last_seq(r), 140);
  assert_int_equal(scan(r, 120, 140, INT64_MIN, INT64_MAX, seqs, 200, NULL), 20);
  assert_int_equal(seqs[0], 121);
  /* the unmapped older segments still read, all of them, in order */
  assert_int_equal(scan(r, INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX, seqs, 200, NULL), 140);
  for (int i = 0; i < 140; i++)
    assert_int_equal(seqs[i], i + 1);
  zql_evlog_reader_close(r);

  /* segments wholly before the _seq are not even read at open: their times are unknown
   * until asked for, a time range still finds their records, chunk bounds over the whole
   * log stay ordered, and a damaged index is reported when a cursor enters, not before */
  assert_int_equal(zql_evlog_reader_open_after(tmpdir, 120, &r, NULL), 0);
  assert_int_equal(zql_evlog_reader_first_seq(r), 1);
  int64_t b[9];
  int k = zql_evlog_split(r, 0, 140, 8, b, NULL);
  assert_true(k >= 1);
  assert_int_equal(b[0], 0);
  assert_int_equal(b[k], 140);
  for (int i = 1; i <= k; i++)
    assert_true(b[i] > b[i - 1]);
  assert_true(zql_evlog_reader_bytes(r) > 140 * 7);
  assert_int_equal(scan(r, INT64_MIN, INT64_MAX, 100000 + 10 * 1000, 100000 + 13 * 1000, seqs,
                        200, NULL), 3);
  assert_int_equal(seqs[0], 11);
  const zql_evlog_seginfo_t *si = zql_evlog_reader_segment(r, 0);
  assert_int_equal(si->first_seq, 1);
  assert_int_equal(si->min_ts, 100000);
  assert_int_equal(si->max_ts, 100000 + (si->last_seq - 1) * 1000);
  zql_evlog_reader_close(r);
  char p2[512];
  seg_file(p2, sizeof p2, 1, true);
  struct stat st;
  assert_int_equal(stat(p2, &st), 0);
  int fd = open(p2, O_RDWR);
  assert_true(fd >= 0);
  uint8_t junk[8] = {0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef};
  assert_int_equal(pwrite(fd, junk, sizeof junk, st.st_size - 8), 8); /* the footer */
  close(fd);
  assert_int_equal(zql_evlog_reader_open_after(tmpdir, 120, &r, NULL), 0);
  assert_int_equal(scan(r, 120, 140, INT64_MIN, INT64_MAX, seqs, 200, NULL), 20);
  zql_strbuf_t e2 = ZQL_STRBUF_INIT;
  assert_int_equal(scan(r, 0, 5, INT64_MIN, INT64_MAX, seqs, 200, &e2), ZQL_E_CORRUPT);
  assert_non_null(strstr(e2.buf, "00000000000000000001.seg"));
  zql_strbuf_release(&e2);
  zql_evlog_reader_close(r);
  assert_int_equal(unlink(p2), 0); /* gone: what the retention case below expects */

  /* retention removes the second segment after the open: entering it fails cleanly */
  assert_int_equal(zql_evlog_reader_open_after(tmpdir, 120, &r, NULL), 0);
  char path[512];
  int64_t second = zql_evlog_reader_segment(r, 0)->first_seq;
  seg_file(path, sizeof path, second, true);
  assert_int_equal(unlink(path), 0);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(scan(r, 0, 140, INT64_MIN, INT64_MAX, seqs, 200, &err), ZQL_E_IO);
  char want[32];
  zql_evlog_name(want, second, true);
  assert_non_null(strstr(err.buf, want));
  assert_non_null(strstr(err.buf, "removed"));
  zql_strbuf_release(&err);
  /* the rest of the snapshot is unaffected */
  assert_int_equal(scan(r, 120, 140, INT64_MIN, INT64_MAX, seqs, 200, NULL), 20);
  zql_evlog_reader_close(r);
}

static void test_sealed_corruption(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  append_n(w, 20, 1000, 1, 0);
  assert_int_equal(zql_evlog_roll(w, NULL), 0);
  append_n(w, 5, 2000, 1, 20);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  char path[512];
  seg_file(path, sizeof path, 1, true);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  /* flip one byte of a document in the middle */
  flip_byte(path, (off_t)(EVLOG_HDR_SIZE + (st.st_size - EVLOG_HDR_SIZE) / 3), 0x40);

  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int64_t seqs[32];
  assert_int_equal(scan(r, INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX, seqs, 32, &err),
                   ZQL_E_CORRUPT);
  assert_non_null(strstr(err.buf, "00000000000000000001.seg': offset "));
  zql_strbuf_release(&err);
  zql_evlog_reader_close(r);

  zql_evlog_check_result_t res;
  zql_strbuf_t rep = ZQL_STRBUF_INIT;
  assert_int_equal(zql_evlog_check(tmpdir, true, &rep, &res, NULL), 0);
  assert_int_equal(res.problems, 1);
  assert_int_equal(res.repaired, 0); /* sealed data is never "repaired" */
  assert_non_null(strstr(rep.buf, "events/00000000000000000001.seg: offset "));
  assert_non_null(strstr(rep.buf, "CRC mismatch"));
  zql_strbuf_release(&rep);
  /* the file is unchanged by --repair */
  struct stat st2;
  assert_int_equal(stat(path, &st2), 0);
  assert_int_equal(st.st_size, st2.st_size);
}

static void test_torn_tail(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  append_n(w, 10, 1000, 1, 0);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  char path[512];
  seg_file(path, sizeof path, 1, false);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  /* cut the last record in the middle */
  assert_int_equal(truncate(path, st.st_size - 5), 0);
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, &notes);
  assert_non_null(strstr(notes.buf, "truncated"));
  assert_non_null(strstr(notes.buf, "last _seq 9"));
  assert_int_equal(zql_evlog_last_seq(w), 9);
  assert_int_equal(append_n(w, 1, 1000, 1, 9), 10);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  zql_strbuf_release(&notes);

  /* garbage after the records: check reports it, --repair truncates it */
  assert_int_equal(stat(path, &st), 0);
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_int_equal(write(fd, "\x30\x00\x00\x00garbage", 11), 11);
  close(fd);
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  assert_int_equal(zql_evlog_reader_last_seq(r), 10); /* readers see complete records only */
  zql_evlog_reader_close(r);
  zql_evlog_check_result_t res;
  zql_strbuf_t rep = ZQL_STRBUF_INIT;
  assert_int_equal(zql_evlog_check(tmpdir, false, &rep, &res, NULL), 0);
  assert_int_equal(res.problems, 1);
  assert_non_null(strstr(rep.buf, "torn tail: 11 bytes"));
  zql_strbuf_reset(&rep);
  assert_int_equal(zql_evlog_check(tmpdir, true, &rep, &res, NULL), 0);
  assert_int_equal(res.repaired, 1);
  zql_strbuf_reset(&rep);
  assert_int_equal(zql_evlog_check(tmpdir, false, &rep, &res, NULL), 0);
  assert_int_equal(res.problems, 0);
  struct stat st2;
  assert_int_equal(stat(path, &st2), 0);
  assert_int_equal(st2.st_size, st.st_size);
  zql_strbuf_release(&rep);
}

/* A record of the .open segment whose bytes went bad (a tail torn by a system crash: the
 * header reached the disk, the document did not): the reader's snapshot still ends at the
 * last complete frame, and a cursor reaching the bad record fails naming file and offset;
 * the records before it read normally. */
static void test_open_segment_crc(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  append_n(w, 10, 1000, 1, 0);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  char path[512];
  seg_file(path, sizeof path, 1, false);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  flip_byte(path, st.st_size - 12, 0x21); /* inside the last record's document */
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  assert_int_equal(zql_evlog_reader_last_seq(r), 10);
  int64_t seqs[32];
  assert_int_equal(scan(r, 0, 9, INT64_MIN, INT64_MAX, seqs, 32, NULL), 9);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(scan(r, 0, 10, INT64_MIN, INT64_MAX, seqs, 32, &err), ZQL_E_CORRUPT);
  assert_non_null(strstr(err.buf, "00000000000000000001.open': offset "));
  assert_non_null(strstr(err.buf, "CRC mismatch"));
  zql_strbuf_release(&err);
  zql_evlog_reader_close(r);
  /* the writer's recovery cuts it: then the log ends at 9 */
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, &notes);
  assert_int_equal(zql_evlog_last_seq(w), 9);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  zql_strbuf_release(&notes);
}

/* A reader's snapshot of the log of one .open segment: hinted or not, `count` records,
 * every one read back. */
static void assert_snapshot(bool hinted, int64_t count)
{
  zql_evlog_reader_t *r;
  int64_t seqs[64];
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  const zql_evlog_seginfo_t *si = zql_evlog_reader_segment(r, 0);
  assert_int_equal(si->hinted, hinted);
  assert_int_equal(si->count, count);
  assert_int_equal(scan(r, 0, count, INT64_MIN, INT64_MAX, seqs, 64, NULL), count);
  zql_evlog_reader_close(r);
}

/* The writer's hint for readers (evlog.c write_hint, evlog_read.c use_hint): written at
 * close, used when it agrees with the file, ignored (the records are walked) when it is
 * stale, damaged or describes records that are gone; the snapshot is the same either way. */
static void test_open_segment_hint(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  for (int i = 0; i < 3; i++)
    append_n(w, 10, 1000 + 100000 * i, 1, 10 * i);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  char hint[600];
  snprintf(hint, sizeof hint, "%s/events/%020d.hint", tmpdir, 1);
  struct stat st;
  assert_int_equal(stat(hint, &st), 0);

  int64_t seqs[64];
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  const zql_evlog_seginfo_t *si = zql_evlog_reader_segment(r, 0);
  assert_true(si->hinted);
  assert_int_equal(si->count, 30);
  assert_int_equal(si->min_ts, 1000);
  assert_int_equal(scan(r, 0, 30, INT64_MIN, INT64_MAX, seqs, 64, NULL), 30);
  assert_int_equal(scan(r, 17, 30, 200000, INT64_MAX, seqs, 64, NULL), 10); /* by time */
  assert_int_equal(seqs[0], 21);
  zql_evlog_reader_close(r);

  /* records appended after the hint (a writer that has not refreshed it): walked */
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  assert_int_equal(stat(hint, &st), -1); /* the writer's recovery dropped it */
  assert_int_equal(zql_evlog_close(w, NULL), 0); /* and wrote it again */
  assert_int_equal(stat(hint, &st), 0);
  char keep[700];
  snprintf(keep, sizeof keep, "%s.keep", hint);
  assert_int_equal(rename(hint, keep), 0);
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  append_n(w, 5, 500000, 1, 30);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  assert_int_equal(rename(keep, hint), 0); /* the hint of 30 records, 35 in the file */
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  si = zql_evlog_reader_segment(r, 0);
  assert_true(si->hinted);
  assert_int_equal(si->count, 35);
  assert_int_equal(si->max_ts, 500004);
  assert_int_equal(scan(r, 0, 40, INT64_MIN, INT64_MAX, seqs, 64, NULL), 35);
  zql_evlog_reader_close(r);

  /* the hint gives the last record's length, and only that record is checked: a hint
   * without it (an older writer's) has the last stride walked; a wrong one is ignored */
  int hfd = open(hint, O_RDONLY);
  uint8_t lenb[4];
  assert_int_equal(pread(hfd, lenb, 4, 60), 4);
  close(hfd);
  uint32_t last_len = evlog_ld32(lenb);
  assert_true(last_len > EVLOG_FRAME_HDR && last_len < 200); /* append_n's records */
  set_hint_last_len(hint, 0);
  assert_snapshot(true, 35);
  set_hint_last_len(hint, last_len + 1);
  assert_snapshot(false, 35);
  set_hint_last_len(hint, last_len);
  assert_snapshot(true, 35);

  /* a damaged hint: ignored */
  flip_byte(hint, 20, 1);
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  si = zql_evlog_reader_segment(r, 0);
  assert_false(si->hinted);
  assert_int_equal(si->count, 35);
  zql_evlog_reader_close(r);

  /* a hint that disagrees with the file (its records were cut and others written in their
   * place, of other sizes): ignored */
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  assert_int_equal(zql_evlog_close(w, NULL), 0); /* a valid hint of 35 records */
  assert_int_equal(stat(hint, &st), 0);
  uint8_t *saved = malloc((size_t)st.st_size);
  int fd = open(hint, O_RDONLY);
  assert_int_equal(read(fd, saved, (size_t)st.st_size), st.st_size);
  close(fd);
  char seg[512];
  seg_file(seg, sizeof seg, 1, false);
  struct stat ss;
  assert_int_equal(stat(seg, &ss), 0);
  assert_int_equal(truncate(seg, EVLOG_HDR_SIZE), 0); /* every record gone */
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  bson_t *big = bson_new();
  BSON_APPEND_DATE_TIME(big, "timestamp", 7);
  char pad[700];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = 0;
  BSON_APPEND_UTF8(big, "pad", pad);
  const bson_t *docs[1] = {big};
  for (int i = 0; i < 40; i++)
    assert_int_equal(zql_evlog_append(w, docs, 1, NULL, NULL), 0);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  bson_destroy(big);
  fd = open(hint, O_WRONLY | O_TRUNC); /* the old hint back */
  assert_int_equal(write(fd, saved, (size_t)st.st_size), st.st_size);
  close(fd);
  free(saved);
  assert_snapshot(false, 40);

  /* records larger than the window the check reads at each sparse entry: checked whole */
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 4, NULL);
  assert_int_equal(zql_evlog_close(w, NULL), 0); /* a valid hint of the 40 records */
  assert_snapshot(true, 40);
  /* and one whose last byte is wrong there: the hint is not used */
  assert_int_equal(stat(seg, &ss), 0);
  flip_byte(seg, ss.st_size - 1, 1); /* the last document's NUL */
  assert_snapshot(false, 39);
}

/* Every record of (lo, hi], read by a cursor through the mappings and by one that preads
 * (zql_evlog_cursor_use_pread), 5 views per call: the same _seqs and bytes. Returns the
 * count, or the pread cursor's error (err). */
static int scan_both(zql_evlog_reader_t *r, int64_t lo, int64_t hi, zql_strbuf_t *err)
{
  zql_evlog_range_t q = {lo, hi, INT64_MIN, INT64_MAX};
  zql_evlog_cursor_t *m, *p;
  assert_int_equal(zql_evlog_cursor_open(r, &q, &m, NULL), 0);
  assert_int_equal(zql_evlog_cursor_open(r, &q, &p, NULL), 0);
  zql_evlog_cursor_use_pread(p);
  zql_evlog_view_t vm[5], vp[5];
  int total = 0, gm = 0, gp = 0, im = 0, ip = 0;
  for (;;) {
    if (ip == gp) {
      gp = zql_evlog_cursor_next(p, vp, 5, err);
      ip = 0;
      if (gp <= 0)
        break;
    }
    if (im == gm) {
      gm = zql_evlog_cursor_next(m, vm, 5, NULL);
      im = 0;
      assert_true(gm > 0);
    }
    assert_int_equal(vp[ip].seq, vm[im].seq);
    assert_int_equal(vp[ip].ts, vm[im].ts);
    assert_int_equal(vp[ip].len, vm[im].len);
    assert_memory_equal(vp[ip].doc, vm[im].doc, vm[im].len);
    ip++, im++, total++;
  }
  if (gp == 0) /* both at their end */
    assert_true(im == gm && zql_evlog_cursor_next(m, vm, 5, NULL) == 0);
  zql_evlog_cursor_close(m);
  zql_evlog_cursor_close(p);
  return gp < 0 ? gp : total;
}

/* Cursors that pread: records across window refills, records larger than the window,
 * several segments, the .open one sealed after the reader opened it, a bad CRC. */
static void test_cursor_pread(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 1u << 20, 16, NULL);
  bson_t *big = bson_new();
  size_t plen = 300u << 10; /* past the 128 KiB window */
  char *pad = malloc(plen + 1);
  memset(pad, 'p', plen);
  pad[plen] = 0;
  BSON_APPEND_DATE_TIME(big, "timestamp", 5);
  BSON_APPEND_UTF8(big, "pad", pad);
  free(pad);
  const bson_t *docs[1] = {big};
  int64_t n = 0;
  for (int i = 0; i < 80; i++) {
    append_n(w, 50, 1000 + 50 * i, 1, 50 * i);
    n += 50;
    if (i % 9 == 4) {
      assert_int_equal(zql_evlog_append(w, docs, 1, NULL, NULL), 0);
      n++;
    }
  }
  bson_destroy(big);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  assert_true(count_files(".seg") >= 2);
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  assert_int_equal(zql_evlog_reader_last_seq(r), n);
  assert_int_equal(scan_both(r, 0, n, NULL), n);
  assert_int_equal(scan_both(r, 777, 3111, NULL), 3111 - 777);
  assert_int_equal(scan_both(r, n - 3, n, NULL), 3);
  zql_evlog_reader_close(r);

  /* the .open segment sealed (renamed) after the reader opened it, before any cursor read
   * it: read under its new name */
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  size_t last = zql_evlog_reader_nsegments(r) - 1;
  const zql_evlog_seginfo_t *si = zql_evlog_reader_segment(r, last);
  assert_false(si->sealed);
  char from[512], to[512];
  seg_file(from, sizeof from, si->first_seq, false);
  seg_file(to, sizeof to, si->first_seq, true);
  assert_int_equal(rename(from, to), 0);
  assert_int_equal(scan_both(r, si->first_seq - 1, n, NULL), n - si->first_seq + 1);
  assert_int_equal(rename(to, from), 0);
  zql_evlog_reader_close(r);

  /* a sealed segment removed (log retention) after the reader mapped it: its records are
   * read from the mapping */
  char seg[512], gone[600];
  seg_file(seg, sizeof seg, 1, true);
  snprintf(gone, sizeof gone, "%s.gone", seg);
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  assert_int_equal(rename(seg, gone), 0);
  assert_int_equal(scan_both(r, 0, n, NULL), n);
  assert_int_equal(rename(gone, seg), 0);
  zql_evlog_reader_close(r);

  /* a record whose bytes went bad in a sealed segment: the pread cursor says where */
  flip_byte(seg, 4000, 0x10);
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_range_t q = {0, n, INT64_MIN, INT64_MAX};
  zql_evlog_cursor_t *c;
  assert_int_equal(zql_evlog_cursor_open(r, &q, &c, NULL), 0);
  zql_evlog_cursor_use_pread(c);
  zql_evlog_view_t v[64];
  int got;
  while ((got = zql_evlog_cursor_next(c, v, 64, &err)) > 0)
    ;
  assert_int_equal(got, ZQL_E_CORRUPT);
  assert_non_null(strstr(err.buf, "00000000000000000001.seg': offset "));
  zql_strbuf_release(&err);
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
}

static void test_interrupted_seal(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  append_n(w, 5, 1000, 1, 0);
  assert_int_equal(zql_evlog_roll(w, NULL), 0);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  /* as if the writer died after writing the trailer, before the rename */
  char seg[512], open6[512], open1[512];
  seg_file(seg, sizeof seg, 1, true);
  seg_file(open1, sizeof open1, 1, false);
  seg_file(open6, sizeof open6, 6, false);
  assert_int_equal(unlink(open6), 0);
  assert_int_equal(rename(seg, open1), 0);
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, &notes);
  assert_non_null(strstr(notes.buf, "finished an interrupted seal"));
  assert_int_equal(append_n(w, 1, 1000, 1, 5), 6);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  assert_int_equal(count_files(".seg"), 1);
  zql_strbuf_release(&notes);
}

static void test_lock(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  zql_evlog_t *w2 = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_evlog_open(tmpdir, NULL, &w2, &err), ZQL_E_LOCKED);
  assert_null(w2);
  assert_non_null(strstr(err.buf, "locked by another writer"));
  zql_strbuf_reset(&err);
  /* readers and a plain check need no lock; repair does */
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  zql_evlog_reader_close(r);
  zql_evlog_check_result_t res;
  assert_int_equal(zql_evlog_check(tmpdir, false, NULL, &res, NULL), 0);
  assert_true(res.writer_active);
  assert_int_equal(zql_evlog_check(tmpdir, true, NULL, &res, &err), ZQL_E_LOCKED);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  assert_int_equal(zql_evlog_open(tmpdir, NULL, &w2, NULL), 0);
  assert_int_equal(zql_evlog_close(w2, NULL), 0);
  zql_strbuf_release(&err);
}

static void test_retention(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  for (int d = 0; d < 5; d++) { /* 5 sealed segments, one per "day" */
    append_n(w, 10, (int64_t)d * 86400000, 1000, d * 10);
    assert_int_equal(zql_evlog_roll(w, NULL), 0);
  }
  append_n(w, 3, 5 * 86400000LL, 1000, 50);
  int dropped = -1;
  /* older than 2.5 days at day 5: days 0, 1, 2 */
  assert_int_equal(zql_evlog_retain(w, 2 * 86400000LL + 43200000, 0, 5 * 86400000LL, &dropped, NULL), 0);
  assert_int_equal(dropped, 3);
  assert_int_equal(count_files(".seg"), 2);
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  assert_int_equal(zql_evlog_reader_first_seq(r), 31);
  assert_int_equal(zql_evlog_reader_last_seq(r), 53);
  int64_t seqs[64];
  assert_int_equal(scan(r, 0, 100, INT64_MIN, INT64_MAX, seqs, 64, NULL), 23);
  assert_int_equal(seqs[0], 31);
  zql_evlog_reader_close(r);
  /* by size: keep at most 1 byte: every sealed segment goes, the .open stays */
  assert_int_equal(zql_evlog_retain(w, 0, 1, 0, &dropped, NULL), 0);
  assert_int_equal(dropped, 2);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  w = open_log(ZQL_EVLOG_SYNC_NONE, 0, 0, NULL);
  assert_int_equal(zql_evlog_last_seq(w), 53);
  assert_int_equal(append_n(w, 1, 0, 1, 0), 54);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
}

static void test_split(void **state)
{
  zql_evlog_t *w = open_log(ZQL_EVLOG_SYNC_NONE, 8192, 8, NULL);
  for (int b = 0; b < 40; b++)
    append_n(w, 25, 0, 1, b * 25);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  zql_evlog_reader_t *r;
  assert_int_equal(zql_evlog_reader_open(tmpdir, &r, NULL), 0);
  int64_t bounds[9];
  int k = zql_evlog_split(r, 0, INT64_MAX, 8, bounds, NULL);
  assert_int_equal(k, 8);
  assert_int_equal(bounds[0], 0);
  assert_int_equal(bounds[8], 1000);
  for (int i = 0; i < k; i++) {
    int64_t size = bounds[i + 1] - bounds[i]; /* records are equal-sized here */
    assert_true(size >= 125 - 10 && size <= 125 + 10);
  }
  /* each chunk starts at a sparse entry (every 8th record of its segment, counted from
   * the segment's first): a cursor opened there reads no record before it */
  for (int i = 1; i < k; i++) {
    const zql_evlog_seginfo_t *si = NULL;
    for (size_t g = 0; (si = zql_evlog_reader_segment(r, g)) != NULL; g++)
      if (bounds[i] + 1 >= si->first_seq && bounds[i] + 1 <= si->last_seq)
        break;
    assert_non_null(si);
    assert_int_equal((bounds[i] + 1 - si->first_seq) % 8, 0);
  }
  k = zql_evlog_split(r, 100, 110, 4, bounds, NULL);
  assert_true(k >= 1 && k <= 4);
  assert_int_equal(bounds[0], 100);
  assert_int_equal(bounds[k], 110);
  for (int i = 0; i < k; i++)
    assert_true(bounds[i] < bounds[i + 1]);
  assert_int_equal(zql_evlog_split(r, 100, 101, 4, bounds, NULL), 1);
  assert_int_equal(zql_evlog_split(r, 2000, 3000, 4, bounds, NULL), 0);
  zql_evlog_reader_close(r);
}

typedef struct {
  zql_evlog_t *w;
  int64_t firsts[50];
} thr_t;

static void *appender(void *arg)
{
  thr_t *t = arg;
  for (int i = 0; i < 50; i++) {
    bson_t *d = BCON_NEW("i", BCON_INT32(i));
    const bson_t *docs[] = {d, d};
    if (zql_evlog_append(t->w, docs, 2, &t->firsts[i], NULL) != 0)
      t->firsts[i] = -1;
    bson_destroy(d);
  }
  return NULL;
}

static void test_group_commit_threads(void **state)
{
  zql_evlog_opts_t o;
  zql_evlog_opts_init(&o);
  o.sync_interval_us = 2000;
  o.segment_bytes = 16384; /* rolls while threads wait for syncs */
  zql_evlog_t *w;
  assert_int_equal(zql_evlog_open(tmpdir, &o, &w, NULL), 0);
  thr_t t[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    t[i].w = w;
    assert_int_equal(pthread_create(&th[i], NULL, appender, &t[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(zql_evlog_last_seq(w), 400);
  assert_int_equal(zql_evlog_close(w, NULL), 0);
  /* each batch got two consecutive _seq; all batches are distinct */
  bool seen[402] = {false};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 50; j++) {
      int64_t f = t[i].firsts[j];
      assert_true(f >= 1 && f + 1 <= 400);
      assert_false(seen[f]);
      assert_false(seen[f + 1]);
      seen[f] = seen[f + 1] = true;
    }
  zql_evlog_check_result_t res;
  assert_int_equal(zql_evlog_check(tmpdir, false, NULL, &res, NULL), 0);
  assert_int_equal(res.problems, 0);
  assert_int_equal(res.records, 400);
}

int zql_unit_evlog(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_framing),
      EVTEST(test_append_reopen),
      EVTEST(test_id_timestamp_rules),
      EVTEST(test_size_limit),
      EVTEST(test_roll_seal_index),
      EVTEST(test_pruning_skips_segments),
      EVTEST(test_open_after_lazy_map),
      EVTEST(test_sealed_corruption),
      EVTEST(test_torn_tail),
      EVTEST(test_open_segment_crc),
      EVTEST(test_open_segment_hint),
      EVTEST(test_cursor_pread),
      EVTEST(test_interrupted_seal),
      EVTEST(test_lock),
      EVTEST(test_retention),
      EVTEST(test_split),
      EVTEST(test_group_commit_threads),
  };
  return cmocka_run_group_tests_name("evlog", tests, NULL, NULL);
}
