/*
 * log.c -- zqld's leveled logging to stderr (runtime services; contract in log.h).
 *
 * Every service thread of the daemon (ingest endpoints, the log writer, the scheduler,
 * HTTP) reports through zql_log(). A message is formatted into a stack buffer (or a heap
 * one for long messages) together with its prefix and newline, and handed to the kernel
 * with one write(2) while holding a mutex: other threads' lines can neither interleave
 * with it nor split it. Partial writes and EINTR are retried; a failing stderr (EPIPE, a
 * full disk) drops the line, since there is nowhere left to report it.
 *
 * Journal detection follows systemd.exec(5): $JOURNAL_STREAM is "DEV:INODE" of the stream
 * systemd connected to stdout/stderr; it is inherited by children whose stderr may point
 * elsewhere, hence the comparison with fstat(2) of descriptor 2.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/log.h"

#define STACK_LINE 1024

static _Atomic int cur_level = ZQL_LOG_INFO;
static _Atomic bool journal;
static char ident[64] = "zqld";
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static int clamp(int level)
{
  return level < ZQL_LOG_ERROR ? ZQL_LOG_ERROR : level > ZQL_LOG_DEBUG ? ZQL_LOG_DEBUG : level;
}

/* Does $JOURNAL_STREAM ("DEV:INODE") name the file behind descriptor 2? */
static bool stderr_is_journal(void)
{
  const char *js = getenv("JOURNAL_STREAM");
  if (!js || !*js)
    return false;
  char *end;
  errno = 0;
  unsigned long long dev = strtoull(js, &end, 10);
  if (errno || end == js || *end != ':')
    return false;
  const char *ino_s = end + 1;
  unsigned long long ino = strtoull(ino_s, &end, 10);
  if (errno || end == ino_s || *end)
    return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0)
    return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void zql_log_init(const char *name, int level)
{
  if (!name || !*name)
    name = "zqld";
  size_t n = strlen(name);
  if (n > sizeof ident - 1)
    n = sizeof ident - 1;
  memcpy(ident, name, n);
  ident[n] = '\0';
  atomic_store(&cur_level, clamp(level));
  atomic_store(&journal, stderr_is_journal());
}

void zql_log_set_level(int level)
{
  atomic_store(&cur_level, clamp(level));
}

int zql_log_get_level(void)
{
  return atomic_load(&cur_level);
}

bool zql_log_enabled(int level)
{
  return level <= atomic_load(&cur_level);
}

bool zql_log_is_journal(void)
{
  return atomic_load(&journal);
}

static const char *const names[] = {[ZQL_LOG_ERROR] = "error",
                                    [ZQL_LOG_WARN] = "warn",
                                    [ZQL_LOG_INFO] = "info",
                                    [ZQL_LOG_DEBUG] = "debug"};

const char *zql_log_level_name(int level)
{
  if (level < 0 || level >= (int)ZQL_ARRAY_LEN(names))
    return NULL;
  return names[level];
}

int zql_log_level_parse(const char *s)
{
  static const struct {
    const char *name;
    int level;
  } table[] = {{"error", ZQL_LOG_ERROR},  {"err", ZQL_LOG_ERROR}, {"warn", ZQL_LOG_WARN},
               {"warning", ZQL_LOG_WARN}, {"info", ZQL_LOG_INFO}, {"debug", ZQL_LOG_DEBUG}};
  if (!s)
    return -1;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(table); i++)
    if (strcasecmp(s, table[i].name) == 0)
      return table[i].level;
  return -1;
}

/* Write all of buf to stderr (one write(2) unless the kernel takes less). */
static void write_all(const char *buf, size_t n)
{
  pthread_mutex_lock(&write_lock);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, buf, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      break; /* nowhere left to report it */
    }
    buf += w;
    n -= (size_t)w;
  }
  pthread_mutex_unlock(&write_lock);
}

/* The line prefix: "<6>" for the journal, else "TIME IDENT[PID]: LEVEL: ". */
static int format_prefix(char *out, size_t cap, int level)
{
  if (atomic_load(&journal))
    return snprintf(out, cap, "<%d>", level);
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  return snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s: ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                  ident, (long)getpid(), zql_log_level_name(level));
}

/* Bytes of c once escaped: "\n", "\xHH" or itself. */
static size_t esc_width(unsigned char c)
{
  return c == '\n' ? 2 : ((c < 0x20 && c != '\t') || c == 0x7f) ? 4 : 1;
}

/* How many bytes of text[0..n) fit in `room` bytes once escaped (whole escapes only);
 * their escaped size goes to *width. */
static size_t esc_fit(const char *text, size_t n, size_t room, size_t *width)
{
  size_t w = 0, i = 0;
  for (; i < n; i++) {
    size_t cw = esc_width((unsigned char)text[i]);
    if (w + cw > room)
      break;
    w += cw;
  }
  *width = w;
  return i;
}

/* Append text[0..n) to out at *len with control characters escaped (the caller sized out
 * with esc_fit). */
static void add_escaped(char *out, size_t *len, const char *text, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t o = *len;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else if (esc_width(c) == 4) {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    } else {
      out[o++] = (char)c;
    }
  }
  *len = o;
}

void zql_log_v(int level, const char *fmt, va_list ap)
{
  level = clamp(level);
  if (!zql_log_enabled(level))
    return;
  int saved_errno = errno;

  /* the message text */
  char small[STACK_LINE];
  char *text = small;
  va_list cp;
  va_copy(cp, ap);
  int tn = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (tn < 0)
    tn = 0;
  size_t n = (size_t)tn;
  bool cut = false;
  if (n > ZQL_LOG_MAX_LINE) {
    n = ZQL_LOG_MAX_LINE;
    cut = true;
  }
  if (n >= sizeof small) {
    char *big = zql_malloc(n + 1);
    if (big) {
      vsnprintf(big, n + 1, fmt, ap);
      text = big;
    } else {
      n = sizeof small - 1; /* out of memory: keep what the stack buffer holds */
      cut = true;
    }
  }
  if (n > 0 && text[n - 1] == '\n' && !cut)
    n--;

  /* prefix + escaped text + "..." + newline in one buffer */
  char pre[160];
  int pn = format_prefix(pre, sizeof pre, level);
  if (pn < 0)
    pn = 0;
  if ((size_t)pn >= sizeof pre)
    pn = (int)sizeof pre - 1;
  char lbuf[STACK_LINE * 2];
  size_t width;
  esc_fit(text, n, SIZE_MAX, &width);
  size_t need = (size_t)pn + width + 5; /* "..." "\n" NUL */
  char *line = need <= sizeof lbuf ? lbuf : zql_malloc(need);
  if (!line) { /* out of memory: keep what fits the stack buffer */
    line = lbuf;
    n = esc_fit(text, n, sizeof lbuf - (size_t)pn - 5, &width);
    cut = true;
  }
  size_t len = (size_t)pn;
  memcpy(line, pre, len);
  add_escaped(line, &len, text, n);
  if (cut) {
    memcpy(line + len, "...", 3);
    len += 3;
  }
  line[len++] = '\n';
  write_all(line, len);

  if (line != lbuf)
    zql_free(line);
  if (text != small)
    zql_free(text);
  errno = saved_errno;
}

void zql_log(int level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  zql_log_v(level, fmt, ap);
  va_end(ap);
}
