/*
 * test_log.c -- unit tests of zqld's logging (runtime/log.c).
 *
 * stderr is captured by pointing descriptor 2 at a pipe (or, for output larger than a
 * pipe holds, an unlinked temporary file) with dup2, and restored before any assertion
 * so cmocka's own messages stay visible. Covers: level names and parsing, the plain
 * format (RFC 3339 UTC time with milliseconds, ident, pid, level), filtering and
 * set_level, the journal's "<N>" prefix and its detection by $JOURNAL_STREAM's DEV:INODE
 * (matching, mismatching, malformed), escaping of control characters, the length cut,
 * out-of-memory, errno preservation, and eight threads writing at once (every line whole).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/log.h"

int zql_unit_log(void);

/* ==== capturing stderr ==== */

typedef struct capture {
  int saved; /* the original descriptor 2 */
  int rd;    /* pipe: the read end; file: the file */
  bool file;
} capture_t;

static void cap_start(capture_t *c, bool file)
{
  fflush(stderr);
  c->saved = dup(STDERR_FILENO);
  assert_true(c->saved >= 0);
  c->file = file;
  if (file) {
    FILE *t = tmpfile();
    assert_non_null(t);
    c->rd = dup(fileno(t));
    fclose(t);
    assert_true(dup2(c->rd, STDERR_FILENO) >= 0);
  } else {
    int p[2];
    assert_int_equal(pipe(p), 0);
    c->rd = p[0];
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    close(p[1]);
  }
}

/* Restore stderr and return everything written meanwhile (free with free()). */
static char *cap_end(capture_t *c)
{
  dup2(c->saved, STDERR_FILENO);
  close(c->saved);
  if (c->file)
    lseek(c->rd, 0, SEEK_SET);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (;;) {
    if (len + 1 >= cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    ssize_t n = read(c->rd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(c->rd);
  return buf;
}

/* Log one message at `level` with the current settings; returns the captured text. */
static char *log_one(int level, const char *msg)
{
  capture_t c;
  cap_start(&c, false);
  zql_log(level, "%s", msg);
  return cap_end(&c);
}

static void plain_init(const char *ident, int level)
{
  unsetenv("JOURNAL_STREAM");
  zql_log_init(ident, level);
}

static time_t now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec;
}

/* ==== tests ==== */

static void test_level_names(void **state)
{
  assert_string_equal(zql_log_level_name(ZQL_LOG_ERROR), "error");
  assert_string_equal(zql_log_level_name(ZQL_LOG_WARN), "warn");
  assert_string_equal(zql_log_level_name(ZQL_LOG_INFO), "info");
  assert_string_equal(zql_log_level_name(ZQL_LOG_DEBUG), "debug");
  assert_null(zql_log_level_name(5));
  assert_null(zql_log_level_name(-1));
  assert_null(zql_log_level_name(8));
  assert_int_equal(zql_log_level_parse("error"), ZQL_LOG_ERROR);
  assert_int_equal(zql_log_level_parse("ERR"), ZQL_LOG_ERROR);
  assert_int_equal(zql_log_level_parse("warn"), ZQL_LOG_WARN);
  assert_int_equal(zql_log_level_parse("Warning"), ZQL_LOG_WARN);
  assert_int_equal(zql_log_level_parse("info"), ZQL_LOG_INFO);
  assert_int_equal(zql_log_level_parse("DEBUG"), ZQL_LOG_DEBUG);
  assert_int_equal(zql_log_level_parse("notice"), -1);
  assert_int_equal(zql_log_level_parse(""), -1);
  assert_int_equal(zql_log_level_parse("info "), -1);
  assert_int_equal(zql_log_level_parse(NULL), -1);
  /* syslog priorities: the level is its own journal prefix */
  assert_int_equal(ZQL_LOG_ERROR, 3);
  assert_int_equal(ZQL_LOG_WARN, 4);
  assert_int_equal(ZQL_LOG_INFO, 6);
  assert_int_equal(ZQL_LOG_DEBUG, 7);
}

static void test_plain_format(void **state)
{
  plain_init("zqldtest", ZQL_LOG_INFO);
  assert_false(zql_log_is_journal());
  time_t before = now_s(); /* the logger reads CLOCK_REALTIME, not time()'s coarse clock */
  capture_t c;
  cap_start(&c, false);
  zql_log(ZQL_LOG_INFO, "hello %d %s", 42, "world");
  char *out = cap_end(&c);
  time_t after = now_s();

  char pat[256];
  snprintf(pat, sizeof pat,
           "^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\\.[0-9]{3}Z "
           "zqldtest\\[%ld\\]: info: hello 42 world\n$",
           (long)getpid());
  regex_t re;
  assert_int_equal(regcomp(&re, pat, REG_EXTENDED), 0);
  regmatch_t m[7];
  int rc = regexec(&re, out, 7, m, 0);
  regfree(&re);
  if (rc != 0)
    fail_msg("unexpected line: %s", out);
  /* the time stamp is now, in UTC */
  struct tm tm = {0};
  tm.tm_year = atoi(out + m[1].rm_so) - 1900;
  tm.tm_mon = atoi(out + m[2].rm_so) - 1;
  tm.tm_mday = atoi(out + m[3].rm_so);
  tm.tm_hour = atoi(out + m[4].rm_so);
  tm.tm_min = atoi(out + m[5].rm_so);
  tm.tm_sec = atoi(out + m[6].rm_so);
  time_t t = timegm(&tm);
  assert_true(t >= before && t <= after);
  free(out);

  /* each level's name; a NULL or empty ident is "zqld" */
  plain_init(NULL, ZQL_LOG_DEBUG);
  out = log_one(ZQL_LOG_WARN, "w");
  assert_non_null(strstr(out, " zqld["));
  assert_non_null(strstr(out, "]: warn: w\n"));
  free(out);
  out = log_one(ZQL_LOG_ERROR, "e");
  assert_non_null(strstr(out, "]: error: e\n"));
  free(out);
  plain_init("", ZQL_LOG_DEBUG);
  out = log_one(ZQL_LOG_DEBUG, "d");
  assert_non_null(strstr(out, " zqld["));
  assert_non_null(strstr(out, "]: debug: d\n"));
  free(out);

  /* a long ident is cut to 63 bytes */
  char ident[100];
  memset(ident, 'x', 99);
  ident[99] = '\0';
  plain_init(ident, ZQL_LOG_INFO);
  out = log_one(ZQL_LOG_INFO, "i");
  char want[80];
  memset(want, 'x', 63);
  snprintf(want + 63, sizeof want - 63, "[%ld]", (long)getpid());
  assert_non_null(strstr(out, want));
  free(out);
}

static void test_levels(void **state)
{
  plain_init("t", ZQL_LOG_WARN);
  assert_int_equal(zql_log_get_level(), ZQL_LOG_WARN);
  assert_true(zql_log_enabled(ZQL_LOG_ERROR));
  assert_true(zql_log_enabled(ZQL_LOG_WARN));
  assert_false(zql_log_enabled(ZQL_LOG_INFO));
  assert_false(zql_log_enabled(ZQL_LOG_DEBUG));

  capture_t c;
  cap_start(&c, false);
  zql_log(ZQL_LOG_DEBUG, "d1");
  zql_log(ZQL_LOG_INFO, "i1");
  zql_log(ZQL_LOG_WARN, "w1");
  zql_log(ZQL_LOG_ERROR, "e1");
  zql_log_set_level(ZQL_LOG_DEBUG);
  zql_log(ZQL_LOG_DEBUG, "d2");
  zql_log_set_level(ZQL_LOG_ERROR);
  zql_log(ZQL_LOG_WARN, "w2");
  zql_log(ZQL_LOG_ERROR, "e2");
  char *out = cap_end(&c);
  assert_null(strstr(out, "d1"));
  assert_null(strstr(out, "i1"));
  assert_null(strstr(out, "w2"));
  const char *w1 = strstr(out, ": warn: w1\n"), *e1 = strstr(out, ": error: e1\n");
  const char *d2 = strstr(out, ": debug: d2\n"), *e2 = strstr(out, ": error: e2\n");
  assert_true(w1 && e1 && d2 && e2);
  assert_true(w1 < e1 && e1 < d2 && d2 < e2);
  free(out);

  /* out-of-range levels are clamped */
  zql_log_set_level(99);
  assert_int_equal(zql_log_get_level(), ZQL_LOG_DEBUG);
  zql_log_set_level(-5);
  assert_int_equal(zql_log_get_level(), ZQL_LOG_ERROR);
  zql_log_set_level(ZQL_LOG_INFO);
  out = log_one(0, "emergency"); /* an emergency is logged as an error */
  assert_non_null(strstr(out, ": error: emergency\n"));
  free(out);
  out = log_one(42, "chatter"); /* below debug: filtered at info */
  assert_string_equal(out, "");
  free(out);
}

/* Point $JOURNAL_STREAM at descriptor 2's file (as systemd does) or at something else. */
static void set_journal_stream(long dev_delta, long ino_delta)
{
  struct stat st;
  assert_int_equal(fstat(STDERR_FILENO, &st), 0);
  char v[64];
  snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev + (unsigned long long)dev_delta,
           (unsigned long long)st.st_ino + (unsigned long long)ino_delta);
  setenv("JOURNAL_STREAM", v, 1);
}

static void test_journal(void **state)
{
  /* matching DEV:INODE: priority prefixes, nothing else */
  capture_t c;
  cap_start(&c, false);
  set_journal_stream(0, 0);
  zql_log_init("zqld", ZQL_LOG_DEBUG);
  bool journal = zql_log_is_journal();
  zql_log(ZQL_LOG_ERROR, "disk %s", "full");
  zql_log(ZQL_LOG_WARN, "slow");
  zql_log(ZQL_LOG_INFO, "started");
  zql_log(ZQL_LOG_DEBUG, "tick");
  char *out = cap_end(&c);
  assert_true(journal);
  assert_string_equal(out, "<3>disk full\n<4>slow\n<6>started\n<7>tick\n");
  free(out);

  /* inherited from a parent whose stderr was the journal: another inode, plain lines */
  cap_start(&c, false);
  set_journal_stream(0, 1);
  zql_log_init("zqld", ZQL_LOG_INFO);
  journal = zql_log_is_journal();
  zql_log(ZQL_LOG_INFO, "x");
  out = cap_end(&c);
  assert_false(journal);
  assert_non_null(strstr(out, "Z zqld["));
  free(out);

  cap_start(&c, false);
  set_journal_stream(1, 0);
  zql_log_init("zqld", ZQL_LOG_INFO);
  journal = zql_log_is_journal();
  out = cap_end(&c);
  assert_false(journal);
  free(out);

  /* malformed values */
  static const char *const bad[] = {"", "12", "12:", ":34", "a:b", "12:34x", "12;34"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    setenv("JOURNAL_STREAM", bad[i], 1);
    zql_log_init("zqld", ZQL_LOG_INFO);
    assert_false(zql_log_is_journal());
  }
  plain_init("zqld", ZQL_LOG_INFO);
}

static void test_escaping(void **state)
{
  plain_init("zqld", ZQL_LOG_INFO);
  char *out = log_one(ZQL_LOG_INFO, "a\nb\x01"
                                    "c\td\x7f"
                                    "e\n");
  const char *msg = strstr(out, ": info: ");
  assert_non_null(msg);
  assert_string_equal(msg, ": info: a\\nb\\x01c\td\\x7fe\n");
  free(out);

  /* only one trailing newline is dropped; the rest stays visible */
  out = log_one(ZQL_LOG_INFO, "x\n\n");
  assert_string_equal(strstr(out, ": info: "), ": info: x\\n\n");
  free(out);

  /* an empty message is an empty line, and UTF-8 passes untouched */
  out = log_one(ZQL_LOG_INFO, "");
  assert_string_equal(strstr(out, ": info: "), ": info: \n");
  free(out);
  out = log_one(ZQL_LOG_INFO, "caf\xc3\xa9 \xe2\x82\xac");
  assert_string_equal(strstr(out, ": info: "), ": info: caf\xc3\xa9 \xe2\x82\xac\n");
  free(out);

  /* the journal format escapes as well */
  capture_t c;
  cap_start(&c, false);
  set_journal_stream(0, 0);
  zql_log_init("zqld", ZQL_LOG_INFO);
  zql_log(ZQL_LOG_INFO, "%s", "one\n<3>forged");
  out = cap_end(&c);
  assert_string_equal(out, "<6>one\\n<3>forged\n");
  free(out);
  plain_init("zqld", ZQL_LOG_INFO);
}

/* A line of `n` copies of `ch`, as logged by zql_log. */
static char *repeat(char ch, size_t n)
{
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, ch, n);
  s[n] = '\0';
  return s;
}

static void test_long_lines(void **state)
{
  plain_init("zqld", ZQL_LOG_INFO);
  /* longer than the stack buffers, shorter than the cut: whole */
  char *msg = repeat('a', 5000);
  char *out = log_one(ZQL_LOG_INFO, msg);
  const char *m = strstr(out, ": info: ");
  assert_non_null(m);
  assert_int_equal(strlen(m + 8), 5001);
  assert_memory_equal(m + 8, msg, 5000);
  assert_int_equal(m[8 + 5000], '\n');
  free(out);
  free(msg);

  /* exactly the cut, and one byte more */
  msg = repeat('b', ZQL_LOG_MAX_LINE);
  capture_t c;
  cap_start(&c, true);
  zql_log(ZQL_LOG_INFO, "%s", msg);
  out = cap_end(&c);
  m = strstr(out, ": info: ");
  assert_int_equal(strlen(m + 8), ZQL_LOG_MAX_LINE + 1);
  free(out);
  free(msg);
  msg = repeat('c', ZQL_LOG_MAX_LINE + 1);
  cap_start(&c, true);
  zql_log(ZQL_LOG_INFO, "%s", msg);
  out = cap_end(&c);
  m = strstr(out, ": info: ");
  assert_int_equal(strlen(m + 8), ZQL_LOG_MAX_LINE + 4);
  assert_string_equal(m + 8 + ZQL_LOG_MAX_LINE, "...\n");
  free(out);
  free(msg);

  /* the worst case for escaping: every byte becomes \xHH */
  msg = repeat('\x02', ZQL_LOG_MAX_LINE);
  cap_start(&c, true);
  zql_log(ZQL_LOG_INFO, "%s", msg);
  out = cap_end(&c);
  m = strstr(out, ": info: ");
  assert_int_equal(strlen(m + 8), 4 * ZQL_LOG_MAX_LINE + 1);
  assert_memory_equal(m + 8, "\\x02\\x02", 8);
  free(out);
  free(msg);
}

static void test_out_of_memory(void **state)
{
  plain_init("zqld", ZQL_LOG_INFO);
  char *msg = repeat('z', 3000);
  capture_t c;
  cap_start(&c, false);
  zql_alloc_fail_after(0);
  zql_log(ZQL_LOG_INFO, "%s", msg); /* the text no longer fits the stack buffer */
  zql_log(ZQL_LOG_INFO, "short");   /* needs no allocation */
  zql_alloc_fail_after(-1);
  char *out = cap_end(&c);
  char *m = strstr(out, ": info: ");
  assert_non_null(m);
  char *nl = strchr(m, '\n');
  assert_non_null(nl);
  assert_true(nl - (m + 8) > 900);  /* most of it */
  assert_true(nl - (m + 8) < 3000); /* but cut */
  assert_memory_equal(nl - 3, "...", 3);
  assert_non_null(strstr(nl, ": info: short\n"));
  free(out);

  /* escaping needs a heap buffer for a 700-byte text of control bytes: cut as well */
  free(msg);
  msg = repeat('\x01', 700);
  cap_start(&c, false);
  zql_alloc_fail_after(0);
  zql_log(ZQL_LOG_INFO, "%s", msg);
  zql_alloc_fail_after(-1);
  out = cap_end(&c);
  m = strstr(out, ": info: ");
  assert_non_null(m);
  nl = strchr(m, '\n');
  assert_true(nl && nl[1] == '\0');
  assert_memory_equal(nl - 3, "...", 3);
  assert_true((nl - 3 - (m + 8)) % 4 == 0); /* whole \xHH escapes only */
  free(out);
  free(msg);
}

static void test_errno_kept(void **state)
{
  plain_init("zqld", ZQL_LOG_INFO);
  capture_t c;
  cap_start(&c, false);
  errno = ENOSPC;
  zql_log(ZQL_LOG_INFO, "x");
  int after = errno;
  errno = EACCES;
  zql_log(ZQL_LOG_DEBUG, "filtered");
  int after2 = errno;
  char *out = cap_end(&c);
  free(out);
  assert_int_equal(after, ENOSPC);
  assert_int_equal(after2, EACCES);
}

/* ==== threads ==== */

#define THREADS 8
#define PER_THREAD 1500

static void *writer(void *arg)
{
  int id = (int)(intptr_t)arg;
  char pad[4000];
  for (int i = 0; i < PER_THREAD; i++) {
    size_t n = (size_t)((i * 37 + id * 101) % 3500); /* lines up to ~3.5 KB: beyond PIPE_BUF */
    memset(pad, 'a' + id, n);
    pad[n] = '\0';
    zql_log(ZQL_LOG_INFO, "T%d %d %zu %s", id, i, n, pad);
  }
  return NULL;
}

static void test_threads(void **state)
{
  plain_init("zqld", ZQL_LOG_INFO);
  capture_t c;
  cap_start(&c, true);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    if (pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t) != 0)
      th[t] = 0;
  bool all = true;
  for (int t = 0; t < THREADS; t++) {
    if (th[t])
      pthread_join(th[t], NULL);
    else
      all = false;
  }
  char *out = cap_end(&c);
  assert_true(all);

  /* every line whole and well-formed, each thread's lines complete and in order */
  int next[THREADS] = {0};
  int lines = 0;
  for (char *line = out; *line;) {
    char *nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = '\0';
    char *m = strstr(line, ": info: T");
    assert_non_null(m);
    int id, i;
    size_t n;
    int used = 0;
    assert_int_equal(sscanf(m + 9, "%d %d %zu %n", &id, &i, &n, &used), 3);
    assert_true(id >= 0 && id < THREADS);
    assert_int_equal(i, next[id]);
    next[id]++;
    const char *pad = m + 9 + used;
    assert_int_equal(strlen(pad), n);
    for (size_t k = 0; k < n; k++)
      if (pad[k] != 'a' + id)
        fail_msg("line %d of thread %d is mixed with another", i, id);
    lines++;
    line = nl + 1;
  }
  assert_int_equal(lines, THREADS * PER_THREAD);
  free(out);
}

int zql_unit_log(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_level_names),   ZQL_UNIT_TEST(test_plain_format),
      ZQL_UNIT_TEST(test_levels),        ZQL_UNIT_TEST(test_journal),
      ZQL_UNIT_TEST(test_escaping),      ZQL_UNIT_TEST(test_long_lines),
      ZQL_UNIT_TEST(test_out_of_memory), ZQL_UNIT_TEST(test_errno_kept),
      ZQL_UNIT_TEST(test_threads),
  };
  return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
