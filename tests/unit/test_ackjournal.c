/*
 * test_ackjournal.c -- unit tests of the dedup journal of acked batches
 * (runtime/ackjournal.c, zqld ingest).
 *
 * Covers ackjournal.h: add/find/reopen, a later record replacing an earlier one,
 * revocation, recovery (a torn tail, a CRC-bad record at the end and in the middle,
 * records beyond the event log's last _seq, including one that replaced an older record),
 * all-or-nothing adds (a write that fails half-way through, forced with RLIMIT_FSIZE),
 * retention (newest N per client, or younger than keep_ms, across a reopen) and automatic
 * compaction by size.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/ackjournal.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

static char tmpdir[256];
static char jpath[512];

static int setup_dir(void **state)
{
  snprintf(tmpdir, sizeof tmpdir, "%s/zql-ackj.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir))
    return -1;
  snprintf(jpath, sizeof jpath, "%s/ingest/acked.jnl", tmpdir);
  return 0;
}

static int teardown_dir(void **state)
{
  char p[600];
  unlink(jpath);
  snprintf(p, sizeof p, "%s.tmp", jpath);
  unlink(p);
  snprintf(p, sizeof p, "%s/ingest", tmpdir);
  rmdir(p);
  rmdir(tmpdir);
  return 0;
}

#define AJTEST(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

static int64_t clock_now = 1700000000000;

static int64_t test_clock(void *arg)
{
  return *(int64_t *)arg;
}

static zql_ackrec_t rec(uint8_t client, int64_t batch, int64_t first, int64_t last)
{
  zql_ackrec_t r;
  memset(&r, 0, sizeof r);
  memset(r.client, client, 16);
  r.client[0] = 0xA0; /* never all zero */
  r.batch = batch;
  r.first = first;
  r.last = last;
  r.accepted = last >= first && first > 0 ? (uint32_t)(last - first + 1) : 0;
  r.rejected = 1;
  return r;
}

static zql_ackjournal_t *open_j(int64_t log_last, uint32_t keep, int64_t keep_ms,
                                uint64_t compact, zql_strbuf_t *notes)
{
  zql_ackjournal_opts_t o = {keep, keep_ms, compact, test_clock, &clock_now, notes};
  zql_ackjournal_t *j = NULL;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_ackjournal_open(jpath, log_last, &o, &j, &err);
  if (rc != 0)
    print_error("open: %s\n", err.buf);
  zql_strbuf_release(&err);
  assert_int_equal(rc, 0);
  return j;
}

static off_t file_size(void)
{
  struct stat st;
  if (stat(jpath, &st) < 0)
    return -1;
  return st.st_size;
}

static void assert_found(zql_ackjournal_t *j, zql_ackrec_t want)
{
  zql_ackrec_t got;
  assert_int_equal(zql_ackjournal_find(j, want.client, want.batch, &got), 1);
  assert_memory_equal(got.client, want.client, 16);
  assert_int_equal(got.batch, want.batch);
  assert_int_equal(got.first, want.first);
  assert_int_equal(got.last, want.last);
  assert_int_equal(got.accepted, want.accepted);
  assert_int_equal(got.rejected, want.rejected);
}

static void assert_missing(zql_ackjournal_t *j, zql_ackrec_t want)
{
  assert_int_equal(zql_ackjournal_find(j, want.client, want.batch, NULL), 0);
}

static void flip_byte(off_t off)
{
  int fd = open(jpath, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

/* {==== tests ====} */

static void test_add_find_reopen(void **state)
{
  zql_ackjournal_t *j = open_j(0, 0, 0, 0, NULL);
  assert_int_equal(file_size(), 0);
  zql_ackrec_t a[3] = {rec(1, 1, 1, 10), rec(1, 2, 11, 20), rec(2, 1, 0, 0)};
  assert_int_equal(zql_ackjournal_add(j, a, 3, NULL), 0);
  assert_int_equal(file_size(), 4 * ZQL_ACKJOURNAL_RECORD); /* a time mark + 3 */
  for (int i = 0; i < 3; i++)
    assert_found(j, a[i]);
  assert_missing(j, rec(1, 3, 0, 0));
  assert_missing(j, rec(3, 1, 0, 0));
  zql_ackjournal_info_t info;
  zql_ackjournal_info(j, &info);
  assert_int_equal(info.live, 3);
  assert_int_equal(info.clients, 2);
  /* reserved ids are refused and change nothing */
  zql_ackrec_t bad = rec(1, 0, 1, 1);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_ackjournal_add(j, &bad, 1, &err), ZQL_E_USAGE);
  memset(bad.client, 0, 16);
  bad.batch = 5;
  assert_int_equal(zql_ackjournal_add(j, &bad, 1, &err), ZQL_E_USAGE);
  zql_strbuf_release(&err);
  assert_int_equal(file_size(), 4 * ZQL_ACKJOURNAL_RECORD);
  zql_ackjournal_close(j);

  j = open_j(20, 0, 0, 0, NULL);
  for (int i = 0; i < 3; i++)
    assert_found(j, a[i]);
  /* a later record for the same batch replaces the earlier one */
  zql_ackrec_t again = rec(1, 2, 21, 25);
  assert_int_equal(zql_ackjournal_add(j, &again, 1, NULL), 0);
  assert_found(j, again);
  zql_ackjournal_close(j);
  j = open_j(25, 0, 0, 0, NULL);
  assert_found(j, again);
  assert_found(j, a[0]);
  zql_ackjournal_close(j);
}

static void test_revoke(void **state)
{
  zql_ackjournal_t *j = open_j(0, 0, 0, 0, NULL);
  zql_ackrec_t a[2] = {rec(1, 1, 1, 10), rec(1, 2, 11, 20)};
  assert_int_equal(zql_ackjournal_add(j, a, 2, NULL), 0);
  assert_int_equal(zql_ackjournal_revoke(j, &a[1], 1, NULL), 0);
  assert_missing(j, a[1]);
  assert_found(j, a[0]);
  zql_ackjournal_forget(j, &a[0], 1); /* memory only */
  assert_missing(j, a[0]);
  zql_ackjournal_close(j);
  j = open_j(100, 0, 0, 0, NULL);
  assert_found(j, a[0]); /* forget did not touch the file */
  assert_missing(j, a[1]);
  /* a revoked batch can be recorded again */
  assert_int_equal(zql_ackjournal_add(j, &a[1], 1, NULL), 0);
  assert_found(j, a[1]);
  zql_ackjournal_close(j);
}

static void test_torn_tail(void **state)
{
  zql_ackjournal_t *j = open_j(0, 0, 0, 0, NULL);
  zql_ackrec_t a[2] = {rec(1, 1, 1, 10), rec(1, 2, 11, 20)};
  assert_int_equal(zql_ackjournal_add(j, a, 2, NULL), 0);
  zql_ackjournal_close(j);
  off_t good = file_size();
  /* half a record at the end: a crash in the middle of a write */
  int fd = open(jpath, O_WRONLY | O_APPEND);
  uint8_t junk[30];
  memset(junk, 0x5A, sizeof junk);
  assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
  close(fd);
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  j = open_j(100, 0, 0, 0, &notes);
  assert_int_equal(file_size(), good);
  assert_non_null(strstr(notes.buf, "truncated a torn tail of 30 bytes"));
  assert_found(j, a[0]);
  assert_found(j, a[1]);
  /* appends continue at the valid end */
  zql_ackrec_t b = rec(1, 3, 21, 22);
  assert_int_equal(zql_ackjournal_add(j, &b, 1, NULL), 0);
  zql_ackjournal_close(j);
  j = open_j(100, 0, 0, 0, NULL);
  assert_found(j, b);
  assert_found(j, a[1]);
  zql_ackjournal_close(j);
  zql_strbuf_release(&notes);
}

static void test_crc_damage(void **state)
{
  zql_ackjournal_t *j = open_j(0, 0, 0, 0, NULL);
  zql_ackrec_t a[4] = {rec(1, 1, 1, 10), rec(1, 2, 11, 20), rec(1, 3, 21, 30), rec(1, 4, 31, 40)};
  assert_int_equal(zql_ackjournal_add(j, a, 4, NULL), 0);
  zql_ackjournal_close(j);
  /* the last record (a CRC-bad tail) */
  flip_byte(4 * ZQL_ACKJOURNAL_RECORD + 20);
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  j = open_j(100, 0, 0, 0, &notes);
  assert_int_equal(file_size(), 4 * ZQL_ACKJOURNAL_RECORD);
  assert_non_null(strstr(notes.buf, "torn tail of 52 bytes"));
  assert_missing(j, a[3]);
  assert_found(j, a[2]);
  zql_ackjournal_close(j);
  /* a record in the middle: dropped, the rest kept, the file rewritten without it */
  flip_byte(2 * ZQL_ACKJOURNAL_RECORD + 3);
  zql_strbuf_reset(&notes);
  j = open_j(100, 0, 0, 0, &notes);
  assert_non_null(strstr(notes.buf, "dropped 1 damaged records"));
  assert_found(j, a[0]);
  assert_missing(j, a[1]);
  assert_found(j, a[2]);
  assert_int_equal(file_size(), 3 * ZQL_ACKJOURNAL_RECORD);
  zql_ackjournal_close(j);
  zql_strbuf_reset(&notes);
  j = open_j(100, 0, 0, 0, &notes);
  assert_int_equal(notes.len, 0); /* nothing left to repair */
  assert_found(j, a[2]);
  zql_ackjournal_close(j);
  zql_strbuf_release(&notes);
}

static void test_beyond_log(void **state)
{
  zql_ackjournal_t *j = open_j(0, 0, 0, 0, NULL);
  zql_ackrec_t a[4] = {rec(1, 1, 1, 10), rec(2, 1, 0, 0), rec(1, 2, 11, 20), rec(1, 3, 21, 30)};
  assert_int_equal(zql_ackjournal_add(j, a, 4, NULL), 0);
  /* batch (2,1) later replaced by a record whose events never became durable */
  zql_ackrec_t later = rec(2, 1, 31, 35);
  assert_int_equal(zql_ackjournal_add(j, &later, 1, NULL), 0);
  zql_ackjournal_close(j);
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  j = open_j(20, 0, 0, 0, &notes); /* the log recovered up to _seq 20 */
  assert_non_null(strstr(notes.buf, "forgot 2 batches beyond the event log's last _seq 20"));
  assert_found(j, a[0]);
  assert_found(j, a[2]);
  assert_missing(j, a[3]);
  assert_missing(j, later); /* not the older record either: it was replaced */
  zql_ackjournal_close(j);
  /* the repair is durable: a reopen with a longer log does not bring them back */
  j = open_j(1000, 0, 0, 0, NULL);
  assert_missing(j, a[3]);
  assert_missing(j, later);
  assert_found(j, a[2]);
  zql_ackjournal_info_t info;
  zql_ackjournal_info(j, &info);
  assert_int_equal(info.live, 2);
  zql_ackjournal_close(j);
  zql_strbuf_release(&notes);
}

static void test_all_or_nothing(void **state)
{
  zql_ackjournal_t *j = open_j(0, 0, 0, 0, NULL);
  zql_ackrec_t a = rec(1, 1, 1, 10);
  assert_int_equal(zql_ackjournal_add(j, &a, 1, NULL), 0);
  off_t before = file_size();
  /* room for one more record only: a batch of three fails half-way */
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  lim = old;
  lim.rlim_cur = (rlim_t)before + ZQL_ACKJOURNAL_RECORD + 10;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  zql_ackrec_t b[3] = {rec(1, 2, 11, 20), rec(1, 3, 21, 30), rec(1, 4, 31, 40)};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_ackjournal_add(j, b, 3, &err);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, prev);
  assert_int_equal(rc, ZQL_E_IO);
  assert_non_null(strstr(err.buf, "cannot write"));
  assert_int_equal(file_size(), before);
  for (int i = 0; i < 3; i++)
    assert_missing(j, b[i]);
  /* the journal goes on */
  assert_int_equal(zql_ackjournal_add(j, b, 3, NULL), 0);
  zql_ackjournal_close(j);
  j = open_j(100, 0, 0, 0, NULL);
  assert_found(j, a);
  for (int i = 0; i < 3; i++)
    assert_found(j, b[i]);
  zql_ackjournal_close(j);
  zql_strbuf_release(&err);
}

static void test_retention(void **state)
{
  int64_t t0 = clock_now;
  zql_ackjournal_t *j = open_j(0, 4, 3600 * 1000, 0, NULL);
  for (int64_t b = 1; b <= 10; b++) {
    zql_ackrec_t r = rec(1, b, b, b);
    assert_int_equal(zql_ackjournal_add(j, &r, 1, NULL), 0);
  }
  zql_ackrec_t other[2] = {rec(2, 1, 11, 11), rec(2, 2, 12, 12)};
  assert_int_equal(zql_ackjournal_add(j, other, 2, NULL), 0);
  /* young: everything is kept, whatever the count */
  assert_int_equal(zql_ackjournal_maybe_compact(j, true, NULL), 0);
  zql_ackjournal_info_t info;
  zql_ackjournal_info(j, &info);
  assert_int_equal(info.live, 12);
  zql_ackjournal_close(j);
  /* two hours later, after a restart: the ages came from the file */
  clock_now = t0 + 2 * 3600 * 1000;
  j = open_j(100, 4, 3600 * 1000, 0, NULL);
  zql_ackrec_t fresh = rec(3, 1, 13, 13);
  assert_int_equal(zql_ackjournal_add(j, &fresh, 1, NULL), 0);
  assert_int_equal(zql_ackjournal_maybe_compact(j, true, NULL), 0);
  zql_ackjournal_info(j, &info);
  assert_int_equal(info.live, 4 + 2 + 1);
  assert_int_equal(info.clients, 3);
  for (int64_t b = 1; b <= 6; b++)
    assert_missing(j, rec(1, b, b, b));
  for (int64_t b = 7; b <= 10; b++)
    assert_found(j, rec(1, b, b, b));
  assert_found(j, other[0]);
  assert_found(j, fresh);
  zql_ackjournal_close(j);
  j = open_j(100, 4, 3600 * 1000, 0, NULL);
  zql_ackjournal_info(j, &info);
  assert_int_equal(info.live, 7);
  assert_found(j, rec(1, 7, 7, 7));
  zql_ackjournal_close(j);
  clock_now = t0;
}

static void test_compaction_by_size(void **state)
{
  int64_t t0 = clock_now;
  /* at most 8 batches per client are needed; compaction above 4 KiB */
  zql_ackjournal_t *j = open_j(0, 8, 1000, 4096, NULL);
  off_t biggest = 0;
  for (int64_t b = 1; b <= 2000; b++) {
    clock_now += 100000; /* older than keep_ms at once */
    zql_ackrec_t r = rec((uint8_t)(b % 3), b, b, b);
    assert_int_equal(zql_ackjournal_add(j, &r, 1, NULL), 0);
    assert_int_equal(zql_ackjournal_maybe_compact(j, false, NULL), 0);
    if (file_size() > biggest)
      biggest = file_size();
    /* the newest batches of each client are always there */
    assert_found(j, r);
  }
  assert_true(biggest <= 2 * 48 * ZQL_ACKJOURNAL_RECORD + 2 * ZQL_ACKJOURNAL_RECORD);
  zql_ackjournal_info_t info;
  zql_ackjournal_info(j, &info);
  assert_true(info.compactions > 10);
  assert_true(info.live >= 24 && info.live <= 4096 / ZQL_ACKJOURNAL_RECORD);
  for (int64_t b = 2000 - 23; b <= 2000; b++)
    assert_found(j, rec((uint8_t)(b % 3), b, b, b));
  assert_missing(j, rec(1, 1, 1, 1));
  zql_ackjournal_close(j);
  clock_now = t0;
}

int zql_unit_ackjournal(void); /* tests/unit/unit.h once registered there */

int zql_unit_ackjournal(void)
{
  const struct CMUnitTest tests[] = {
      AJTEST(test_add_find_reopen), AJTEST(test_revoke),          AJTEST(test_torn_tail),
      AJTEST(test_crc_damage),      AJTEST(test_beyond_log),      AJTEST(test_all_or_nothing),
      AJTEST(test_retention),       AJTEST(test_compaction_by_size),
  };
  return cmocka_run_group_tests_name("ackjournal", tests, NULL, NULL);
}
