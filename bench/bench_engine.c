/*
 * bench_engine.c -- the engine benchmark: zql's ad-hoc aggregation throughput and peak
 * memory on generated events, each query against a hand-written single-purpose C program
 * (bench/handwritten.c) over the same log, on the same threads, in the same run
 * (`make bench`; the issue's "Benchmark" section). Figures are printed, never asserted.
 *
 *   bench/bench_engine [--events N] [--dir DIR] [--threads T] [--zql PATH]
 *                      [--handwritten PATH] [--only NAME[,NAME...]] [--repeat R]
 *                      [--timeout S] [--quick]
 *
 * The data. DIR (default bench-data, or bench-data-quick with --quick, in the current
 * directory) is a zql data directory: `zql --data DIR ...` works on it by hand. Its log
 * is written once by
 *     zql gen --events N --seed 1 --users 100000 --data DIR
 * (the other options are gen's defaults: 200 Zipf-distributed projects over 7 days from
 * 2024-01-01; 100 000 users keep every project's distinct users within distinct_count's
 * default exact limit of 100 000, design/ZQL.md R11, so users_exact is an exact answer
 * and never an ERROR cell; groups_1m needs no special data, its groups are _seq % 10^6).
 * After generating, the harness scans the log once for the most frequent project
 * (one_project's constant; ties: the smallest name) and records the parameters, that
 * project and "complete" in DIR/bench-engine.stamp. A later run reuses DIR when the stamp
 * has the same parameters and the log holds exactly N events; otherwise it removes
 * DIR/events and generates again. It never touches a DIR/events it did not write (a log
 * without a stamp is an error).
 *
 * Each query (the zql texts are in queries[] below; one_project gets the project) runs
 * as two programs, by fork/exec, stdin from /dev/null:
 *     HAND  handwritten --data DIR --query NAME --threads T [--project P]
 *     ZQL   zql --data DIR -c QUERY --threads T --format ndjson [--mem-limit 512M]
 * (--mem-limit for groups_1m only). First one warm-up run of each (it fills the page
 * cache; the hand program runs with --print), whose results are kept in DIR/out/NAME.
 * {hand,zql}.ndjson for a human to diff; the table's `rows` column compares their line
 * counts. Then R rounds (--repeat, default 3), each running HAND (checksum output) then
 * ZQL (output to /dev/null). Time is the wall time from fork to the child's exit
 * (CLOCK_MONOTONIC; waitid WNOWAIT, then wait4 reaps it); a program's time is its best
 * round, its memory figures the largest over its rounds. A zql that cannot run or fails
 * (nonzero exit, a signal, the --timeout, default 600 s, set with alarm() before exec)
 * gets "n/a" and the reason is printed under the table; a hand program that fails is an
 * error of the benchmark.
 *
 * Memory, two figures per program. RSS is wait4's ru_maxrss, the peak resident set; it
 * counts every page of the memory-mapped log the program touched, so a full scan shows
 * about the log's size (2.8 GB for 10M events) however little the program allocates.
 * anon is the peak anonymous resident memory (heap, stacks: what --mem-limit bounds),
 * sampled every 2 ms by a thread of the harness from /proc/PID/statm (resident minus
 * shared pages; file-backed pages are "shared"), so a spike shorter than that can be
 * missed.
 *
 * Columns: events is the log's (every query scans all of it); Mev/s = events / s / 10^6;
 * MB/s = the bytes of the log's segment files (the sum of zql_evlog_seginfo.bytes, frames
 * included) / s / 10^6; RSS and anon in MiB; ratio = zql events/s over hand events/s;
 * target: ratio >= 0.60 (the issue's "every query >= 60% of the hand-written program's
 * throughput with 2 threads"); mem: groups_1m only, zql's anon <= 512 MiB (the issue's
 * "peak memory bounded by --mem-limit (10M events with 1M groups under 512 MiB)").
 *
 * MB is 10^6 bytes, MiB 2^20. Exit status: 0 when the table was printed (whatever the
 * targets say), 1 when the benchmark itself failed (generation, the hand program), 2 for
 * a usage error.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"

#define GEN_SEED 1
#define GEN_USERS 100000
#define MEM_LIMIT "512M"
#define MEM_LIMIT_KIB (512L * 1024)
#define TARGET 0.60
#define STAMP "bench-engine.stamp"
#define STAMP_MAGIC "bench_engine stamp 1"
#define PATHMAX 4096
#define SAMPLE_NS 2000000L /* 2 ms between two samples of a child's anonymous memory */

typedef struct bquery {
  const char *name;
  const char *zql; /* one_project: "%s" is the quoted project name */
  bool mem_limit;  /* run zql with --mem-limit and check its peak anonymous memory */
} bquery_t;

static const bquery_t queries[] = {
    {"count_by_type", "from event group by type compute n = count()", false},
    {"pageviews_daily",
     "from event where type == \"pageview\" group by bucket(timestamp, day) as day, "
     "context.project as project compute n = count()",
     false},
    {"users_exact",
     "from event group by context.project as project compute users = "
     "distinct_count(context.user)",
     false},
    {"users_hll",
     "from event group by context.project as project compute users = hll(context.user)", false},
    {"latency",
     "from event group by context.tool as tool, bucket(timestamp, hour) as hour compute "
     "p50 = quantile(extra.ms, 0.5), p95 = quantile(extra.ms, 0.95), "
     "p99 = quantile(extra.ms, 0.99)",
     false},
    {"top_downloads",
     "from event where type == \"download\" group by bucket(timestamp, day) as day, "
     "context.project as project compute n = count() rank by n desc limit 10 within (day)",
     false},
    {"bytes_by_nbhd",
     "from event group by context.neighborhood as neighborhood compute bytes = "
     "sum(extra.bytes)",
     false},
    {"one_project",
     "from event where context.project == %s group by bucket(timestamp, day) as day "
     "compute n = count()",
     false},
    {"groups_1m",
     "from event group by _seq % 1000000 as g compute n = count(), bytes = sum(extra.bytes)",
     true},
};

/* {==== helpers ====} */

ZQL_NORETURN static void die(const char *fmt, ...) ZQL_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
  va_list ap;
  fflush(stdout);
  va_start(ap, fmt);
  fputs("bench_engine: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void usage(FILE *f)
{
  fputs("usage: bench_engine [--events N] [--dir DIR] [--threads T] [--zql PATH]\n"
        "                    [--handwritten PATH] [--only NAME[,NAME...]] [--repeat R]\n"
        "                    [--timeout S] [--quick]\n"
        "  --events N          events in the log (default 10000000)\n"
        "  --dir DIR           the data directory, generated once and reused\n"
        "                      (default bench-data; bench-data-quick with --quick)\n"
        "  --threads T         threads of both programs (default 2)\n"
        "  --zql PATH          the zql program (default ./zql)\n"
        "  --handwritten PATH  the baseline (default: handwritten beside this program)\n"
        "  --only NAMES        run only these queries (comma-separated)\n"
        "  --repeat R          timed rounds after the warm-up; the best counts (default 3)\n"
        "  --timeout S         a zql run taking longer is killed and reported (default 600)\n"
        "  --quick             a smoke run: --events 10000 --repeat 1\n"
        "queries:\n",
        f);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(queries); i++)
    fprintf(f, "  %s\n", queries[i].name);
}

ZQL_NORETURN static void usage_error(const char *fmt, ...) ZQL_PRINTF(1, 2);
static void usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("bench_engine: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  usage(stderr);
  exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s)
{
  char *end;
  errno = 0;
  unsigned long long v = s ? strtoull(s, &end, 10) : 0;
  if (!s || errno || *end || v == 0 || s[0] == '-')
    usage_error("%s needs a positive integer", opt);
  return v;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void join_path(char *buf, size_t n, const char *dir, const char *name)
{
  if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
    die("path too long: %s/%s", dir, name);
}

static bool exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

static void make_dir(const char *path)
{
  if (mkdir(path, 0777) < 0 && errno != EEXIST)
    die("cannot create %s: %s", path, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void rm_tree(const char *path)
{
  if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
    die("cannot remove %s: %s", path, strerror(errno));
}

/* The whole file (NUL-terminated) in sb; false when it cannot be read. */
static bool read_text(const char *path, zql_strbuf_t *sb)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    zql_strbuf_add(sb, buf, n);
  bool ok = !ferror(f) && !sb->oom;
  fclose(f);
  return ok;
}

/* Lines of a file (a last line without a newline counts), or -1. */
static long count_lines(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long n = 0;
  int c, last = '\n';
  while ((c = getc(f)) != EOF) {
    if (c == '\n')
      n++;
    last = c;
  }
  fclose(f);
  return last == '\n' ? n : n + 1;
}

/* The first non-empty line of a file, at most n - 1 bytes, "" when none. */
static void first_line(const char *path, char *out, size_t n)
{
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0]) {
      snprintf(out, n, "%.*s", (int)(n - 1), line);
      break;
    }
  }
  fclose(f);
}

/* {==== running a program ====} */

typedef struct run {
  bool ok;         /* exited with status 0 */
  double secs;     /* fork to exit */
  long maxrss_kib; /* ru_maxrss of the child: its peak resident set, mapped log pages included */
  long anon_kib;   /* the largest anonymous resident memory sampled (heap, stacks) */
  char why[512];   /* when !ok: what happened */
} run_t;

/* Samples the anonymous resident memory of a child every SAMPLE_NS: /proc/PID/statm's
 * resident minus shared pages (shared = file-backed + shmem pages, so the mapped log
 * pages are left out). */
typedef struct sampler {
  pid_t pid;
  atomic_bool stop;
  long peak_kib;
} sampler_t;

static void *sampler_main(void *arg)
{
  sampler_t *s = arg;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/statm", (long)s->pid);
  long page_kib = sysconf(_SC_PAGESIZE) / 1024;
  struct timespec pause = {0, SAMPLE_NS};
  while (!atomic_load(&s->stop)) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[256];
      ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      long size, res, shared;
      if (n > 0) {
        buf[n] = '\0';
        if (sscanf(buf, "%ld %ld %ld", &size, &res, &shared) == 3 &&
            (res - shared) * page_kib > s->peak_kib)
          s->peak_kib = (res - shared) * page_kib;
      }
    }
    nanosleep(&pause, NULL);
  }
  return NULL;
}

/* Run argv (a path, or a name looked up in PATH) with stdin /dev/null and stdout and
 * stderr into the named files; timeout_s > 0 kills it with SIGALRM after that long. */
static run_t run_cmd(const char *const *argv, const char *out_path, const char *err_path,
                     unsigned timeout_s)
{
  run_t r = {false, 0, 0, 0, ""};
  int pfd[2]; /* reports an exec failure: the child writes errno, exec closes it */
  if (pipe2(pfd, O_CLOEXEC) < 0)
    die("pipe: %s", strerror(errno));
  fflush(stdout);
  fflush(stderr);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = 0;
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
      e = errno;
    else {
      if (timeout_s)
        alarm(timeout_s); /* pending alarms survive execve */
      execvp(argv[0], (char *const *)argv);
      e = errno;
    }
    ssize_t w = write(pfd[1], &e, sizeof e);
    (void)w;
    _exit(127);
  }
  close(pfd[1]);
  sampler_t smp;
  smp.pid = pid;
  atomic_init(&smp.stop, false);
  smp.peak_kib = 0;
  pthread_t th;
  if (pthread_create(&th, NULL, sampler_main, &smp) != 0)
    die("pthread_create failed");
  int exec_errno = 0;
  ssize_t got;
  while ((got = read(pfd[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR)
    ;
  close(pfd[0]);
  /* Wait for the exit without reaping (the pid stays the child's while sampled). */
  siginfo_t si;
  while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
    if (errno != EINTR)
      die("waitid: %s", strerror(errno));
  r.secs = now_s() - t0;
  atomic_store(&smp.stop, true);
  pthread_join(th, NULL);
  int st;
  struct rusage ru;
  while (wait4(pid, &st, 0, &ru) < 0)
    if (errno != EINTR)
      die("wait4: %s", strerror(errno));
  r.maxrss_kib = ru.ru_maxrss;
  r.anon_kib = smp.peak_kib;
  if (got == (ssize_t)sizeof exec_errno)
    snprintf(r.why, sizeof r.why, "cannot run %s: %s", argv[0], strerror(exec_errno));
  else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
    r.ok = true;
  else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
    snprintf(r.why, sizeof r.why, "timed out after %u s", timeout_s);
  else {
    char line[400];
    first_line(err_path, line, sizeof line);
    if (WIFSIGNALED(st))
      snprintf(r.why, sizeof r.why, "killed by signal %d (%s)%s%s", WTERMSIG(st),
               strsignal(WTERMSIG(st)), line[0] ? ": " : "", line);
    else
      snprintf(r.why, sizeof r.why, "exit status %d%s%s", WEXITSTATUS(st), line[0] ? ": " : "",
               line);
  }
  return r;
}

static void print_argv(const char *label, const char *const *argv)
{
  printf("%s", label);
  for (size_t i = 0; argv[i]; i++) {
    const char *a = argv[i];
    bool plain = a[0] != '\0';
    for (const char *p = a; *p && plain; p++)
      plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+%@",
                     *p) != NULL;
    if (plain)
      printf(" %s", a);
    else { /* single-quoted for a POSIX shell */
      printf(" '");
      for (const char *p = a; *p; p++)
        if (*p == '\'')
          printf("'\\''");
        else
          putchar(*p);
      putchar('\'');
    }
  }
  putchar('\n');
}

/* {==== the data ====} */

typedef struct logstat {
  uint64_t events, bytes;
  size_t segments;
} logstat_t;

static bool log_stat(const char *dir, logstat_t *ls, zql_strbuf_t *err)
{
  zql_evlog_reader_t *r;
  if (zql_evlog_reader_open(dir, &r, err) < 0)
    return false;
  ls->events = (uint64_t)(zql_evlog_reader_last_seq(r) - zql_evlog_reader_first_seq(r) + 1);
  ls->segments = zql_evlog_reader_nsegments(r);
  ls->bytes = 0;
  for (size_t i = 0; i < ls->segments; i++)
    ls->bytes += zql_evlog_reader_segment(r, i)->bytes;
  zql_evlog_reader_close(r);
  return true;
}

/* Project counts: a small open-addressing table with FNV-1a (Fowler, Noll, Vo). */
typedef struct pcount {
  char *name; /* NULL: empty slot */
  uint32_t len;
  uint64_t n;
} pcount_t;

static uint64_t fnv1a(const char *s, size_t n)
{
  uint64_t h = UINT64_C(14695981039346656037);
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
  return h;
}

static void pcount_add(pcount_t **tab, size_t *cap, size_t *used, const char *s, uint32_t len)
{
  if ((*used + 1) * 2 > *cap) {
    size_t ncap = *cap ? *cap * 2 : 256;
    pcount_t *nt = zql_calloc(ncap, sizeof *nt);
    if (!nt)
      die("out of memory");
    for (size_t i = 0; i < *cap; i++)
      if ((*tab)[i].name) {
        size_t j = fnv1a((*tab)[i].name, (*tab)[i].len) & (ncap - 1);
        while (nt[j].name)
          j = (j + 1) & (ncap - 1);
        nt[j] = (*tab)[i];
      }
    zql_free(*tab);
    *tab = nt;
    *cap = ncap;
  }
  size_t j = fnv1a(s, len) & (*cap - 1);
  for (; (*tab)[j].name; j = (j + 1) & (*cap - 1))
    if ((*tab)[j].len == len && memcmp((*tab)[j].name, s, len) == 0) {
      (*tab)[j].n++;
      return;
    }
  if (!((*tab)[j].name = zql_strndup(s, len)))
    die("out of memory");
  (*tab)[j].len = len;
  (*tab)[j].n = 1;
  (*used)++;
}

/* Names by their bytes, a prefix first. */
static int name_cmp(const pcount_t *a, const pcount_t *b)
{
  int d = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
  return d ? d : (a->len > b->len) - (a->len < b->len);
}

/* The most frequent string context.project of the log (ties: the smallest name). */
static void find_top_project(const char *dir, char *out, size_t outn)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_reader_t *r;
  zql_evlog_cursor_t *c;
  zql_evlog_range_t range;
  zql_evlog_range_all(&range);
  if (zql_evlog_reader_open(dir, &r, &err) < 0 || zql_evlog_cursor_open(r, &range, &c, &err) < 0)
    die("reading the log of %s: %s", dir, err.buf);
  pcount_t *tab = NULL;
  size_t cap = 0, used = 0;
  zql_evlog_view_t views[256];
  int n;
  while ((n = zql_evlog_cursor_next(c, views, 256, &err)) > 0)
    for (int i = 0; i < n; i++) {
      bson_iter_t it, p;
      if (bson_iter_init_from_data(&it, views[i].doc, views[i].len) &&
          bson_iter_find_descendant(&it, "context.project", &p) && BSON_ITER_HOLDS_UTF8(&p)) {
        uint32_t len;
        const char *s = bson_iter_utf8(&p, &len);
        pcount_add(&tab, &cap, &used, s, len);
      }
    }
  if (n < 0)
    die("reading the log of %s: %s", dir, err.buf);
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
  const pcount_t *best = NULL;
  for (size_t i = 0; i < cap; i++) {
    const pcount_t *e = &tab[i];
    if (e->name && (!best || e->n > best->n || (e->n == best->n && name_cmp(e, best) < 0)))
      best = e;
  }
  if (!best)
    die("the log of %s has no event with a string context.project", dir);
  if (best->len >= outn || memchr(best->name, '\n', best->len) ||
      memchr(best->name, '\0', best->len))
    die("the most frequent project name is unusable here (too long, or a newline or NUL)");
  memcpy(out, best->name, best->len);
  out[best->len] = '\0';
  for (size_t i = 0; i < cap; i++)
    zql_free(tab[i].name);
  zql_free(tab);
  zql_strbuf_release(&err);
}

typedef struct data {
  char dir[PATHMAX];
  char params[256];  /* the gen options, as recorded in the stamp */
  char top[1024];    /* the most frequent project */
  logstat_t ls;
  bool generated;
  double gen_secs;
} data_t;

/* The stamp's top project when the stamp matches params and says complete. */
static bool stamp_ok(const char *path, const char *params, char *top, size_t topn)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  bool ok = false;
  if (read_text(path, &sb)) {
    char want[512];
    snprintf(want, sizeof want, "%s\nparams: %s\ncomplete: yes\ntop_project: ", STAMP_MAGIC,
             params);
    size_t wl = strlen(want);
    if (sb.len > wl && strncmp(sb.buf, want, wl) == 0) {
      const char *t = sb.buf + wl;
      size_t tl = strcspn(t, "\n");
      if (tl > 0 && tl < topn && t[tl] == '\n' && t[tl + 1] == '\0') {
        memcpy(top, t, tl);
        top[tl] = '\0';
        ok = true;
      }
    }
  }
  zql_strbuf_release(&sb);
  return ok;
}

static void write_stamp(const char *path, const char *params, const char *top)
{
  char tmp[PATHMAX];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    die("path too long: %s", path);
  FILE *f = fopen(tmp, "w");
  if (!f)
    die("cannot write %s: %s", tmp, strerror(errno));
  fprintf(f, "%s\nparams: %s\ncomplete: %s\ntop_project: %s\n", STAMP_MAGIC, params,
          top ? "yes" : "no", top ? top : "");
  if (fclose(f) != 0 || rename(tmp, path) < 0)
    die("cannot write %s: %s", path, strerror(errno));
}

static void prepare_data(data_t *d, uint64_t events, const char *zql, const char *outdir)
{
  char stamp[PATHMAX], evdir[PATHMAX];
  join_path(stamp, sizeof stamp, d->dir, STAMP);
  join_path(evdir, sizeof evdir, d->dir, "events");
  snprintf(d->params, sizeof d->params, "--events %" PRIu64 " --seed %d --users %d", events,
           GEN_SEED, GEN_USERS);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (stamp_ok(stamp, d->params, d->top, sizeof d->top) && log_stat(d->dir, &d->ls, &err) &&
      d->ls.events == events) {
    zql_strbuf_release(&err);
    return;
  }
  if (exists(evdir) && !exists(stamp))
    die("%s holds a log that bench_engine did not write (no %s): remove it or choose "
        "another --dir", evdir, stamp);
  make_dir(outdir);
  rm_tree(evdir);
  write_stamp(stamp, d->params, NULL);
  char ev[32], seed[16], users[16];
  snprintf(ev, sizeof ev, "%" PRIu64, events);
  snprintf(seed, sizeof seed, "%d", GEN_SEED);
  snprintf(users, sizeof users, "%d", GEN_USERS);
  const char *argv[] = {zql, "gen", "--events", ev, "--seed", seed, "--users", users,
                        "--data", d->dir, NULL};
  char genlog[PATHMAX];
  join_path(genlog, sizeof genlog, outdir, "gen.log");
  print_argv("generating:", argv);
  run_t r = run_cmd(argv, "/dev/null", genlog, 0);
  if (!r.ok)
    die("zql gen failed: %s (see %s)", r.why, genlog);
  zql_strbuf_reset(&err);
  if (!log_stat(d->dir, &d->ls, &err))
    die("reading the generated log: %s", err.buf);
  if (d->ls.events != events)
    die("the generated log holds %" PRIu64 " events, not %" PRIu64, d->ls.events, events);
  find_top_project(d->dir, d->top, sizeof d->top);
  write_stamp(stamp, d->params, d->top);
  d->generated = true;
  d->gen_secs = r.secs;
  zql_strbuf_release(&err);
}

/* {==== one query ====} */

typedef struct result {
  const bquery_t *q;
  run_t hand, zql; /* the best rounds (secs), the largest memory over the rounds */
  bool zql_ok;
  char zql_why[512];
  long hand_rows, zql_rows;
} result_t;

/* The fastest round, with the largest memory figures of all rounds. */
static void keep_best(run_t *best, const run_t *r, bool first)
{
  long rss = first || r->maxrss_kib > best->maxrss_kib ? r->maxrss_kib : best->maxrss_kib;
  long anon = first || r->anon_kib > best->anon_kib ? r->anon_kib : best->anon_kib;
  if (first || r->secs < best->secs)
    *best = *r;
  best->maxrss_kib = rss;
  best->anon_kib = anon;
}

/* The zql text of q, with one_project's name as a string literal. */
static void query_text(const bquery_t *q, const char *top, zql_strbuf_t *sb)
{
  const char *p = strstr(q->zql, "%s");
  if (!p || strcmp(q->name, "one_project") != 0) {
    zql_strbuf_adds(sb, q->zql);
    return;
  }
  zql_strbuf_add(sb, q->zql, (size_t)(p - q->zql));
  zql_strbuf_addc(sb, '"');
  for (const char *c = top; *c; c++) {
    if (*c == '"' || *c == '\\')
      zql_strbuf_addc(sb, '\\');
    zql_strbuf_addc(sb, *c);
  }
  zql_strbuf_addc(sb, '"');
  zql_strbuf_adds(sb, p + 2);
  if (sb->oom)
    die("out of memory");
}

typedef struct cfg {
  uint64_t events;
  unsigned threads, repeat, timeout;
  const char *zql, *hand;
  bool quick;
} cfg_t;

static result_t run_query(const cfg_t *c, const data_t *d, const char *outdir, const bquery_t *q)
{
  result_t res;
  memset(&res, 0, sizeof res);
  res.q = q;
  char threads[16];
  snprintf(threads, sizeof threads, "%u", c->threads);
  zql_strbuf_t text = ZQL_STRBUF_INIT;
  query_text(q, d->top, &text);

  const char *hand[12], *zql[14];
  size_t h = 0, z = 0;
  hand[h++] = c->hand;
  hand[h++] = "--data";
  hand[h++] = d->dir;
  hand[h++] = "--query";
  hand[h++] = q->name;
  hand[h++] = "--threads";
  hand[h++] = threads;
  if (strcmp(q->name, "one_project") == 0) {
    hand[h++] = "--project";
    hand[h++] = d->top;
  }
  size_t h_timed = h;
  hand[h++] = "--print";
  hand[h] = NULL;
  zql[z++] = c->zql;
  zql[z++] = "--data";
  zql[z++] = d->dir;
  zql[z++] = "-c";
  zql[z++] = text.buf;
  zql[z++] = "--threads";
  zql[z++] = threads;
  zql[z++] = "--format";
  zql[z++] = "ndjson";
  if (q->mem_limit) {
    zql[z++] = "--mem-limit";
    zql[z++] = MEM_LIMIT;
  }
  zql[z] = NULL;

  char hand_out[PATHMAX], zql_out[PATHMAX], hand_err[PATHMAX], zql_err[PATHMAX], sum[PATHMAX];
  char name[256];
  snprintf(name, sizeof name, "%s.hand.ndjson", q->name);
  join_path(hand_out, sizeof hand_out, outdir, name);
  snprintf(name, sizeof name, "%s.zql.ndjson", q->name);
  join_path(zql_out, sizeof zql_out, outdir, name);
  snprintf(name, sizeof name, "%s.hand.err", q->name);
  join_path(hand_err, sizeof hand_err, outdir, name);
  snprintf(name, sizeof name, "%s.zql.err", q->name);
  join_path(zql_err, sizeof zql_err, outdir, name);
  snprintf(name, sizeof name, "%s.hand.sum", q->name);
  join_path(sum, sizeof sum, outdir, name);

  /* Warm-up: the page cache, and the results for the rows column. */
  run_t r = run_cmd(hand, hand_out, hand_err, 0);
  if (!r.ok)
    die("%s: the hand-written program failed: %s (see %s)", q->name, r.why, hand_err);
  res.hand_rows = count_lines(hand_out);
  r = run_cmd(zql, zql_out, zql_err, c->timeout);
  res.zql_ok = r.ok;
  if (r.ok)
    res.zql_rows = count_lines(zql_out);
  else
    snprintf(res.zql_why, sizeof res.zql_why, "%s", r.why);

  hand[h_timed] = NULL; /* timed runs print a checksum line only */
  for (unsigned i = 0; i < c->repeat; i++) {
    r = run_cmd(hand, sum, hand_err, 0);
    if (!r.ok)
      die("%s: the hand-written program failed: %s (see %s)", q->name, r.why, hand_err);
    keep_best(&res.hand, &r, i == 0);
    if (!res.zql_ok)
      continue;
    r = run_cmd(zql, "/dev/null", zql_err, c->timeout);
    if (!r.ok) {
      res.zql_ok = false;
      snprintf(res.zql_why, sizeof res.zql_why, "%.480s (in a timed run)", r.why);
      continue;
    }
    keep_best(&res.zql, &r, i == 0);
  }
  zql_strbuf_release(&text);
  return res;
}

/* {==== report ====} */

static double mib(long kib)
{
  return (double)kib / 1024.0;
}

static void print_table(const result_t *res, size_t n, const data_t *d)
{
  printf("%-16s %9s %7s %9s %8s %7s %8s %7s %10s %8s %9s %6s %6s %4s  %s\n", "query", "events",
         "zql s", "zql Mev/s", "zql MB/s", "zql RSS", "zql anon", "hand s", "hand Mev/s",
         "hand RSS", "hand anon", "ratio", ">=0.60", "mem", "rows zql/hand");
  double ev = (double)d->ls.events, by = (double)d->ls.bytes;
  for (size_t i = 0; i < n; i++) {
    const result_t *r = &res[i];
    char zs[16] = "n/a", zev[16] = "n/a", zmb[16] = "n/a", zrss[16] = "n/a", zanon[16] = "n/a";
    char ratio[16] = "n/a", target[16] = "n/a", mem[8] = "-", rows[64];
    if (r->zql_ok) {
      snprintf(zs, sizeof zs, "%.3f", r->zql.secs);
      snprintf(zev, sizeof zev, "%.2f", ev / r->zql.secs / 1e6);
      snprintf(zmb, sizeof zmb, "%.1f", by / r->zql.secs / 1e6);
      snprintf(zrss, sizeof zrss, "%.1f", mib(r->zql.maxrss_kib));
      snprintf(zanon, sizeof zanon, "%.1f", mib(r->zql.anon_kib));
      double q = r->hand.secs / r->zql.secs;
      snprintf(ratio, sizeof ratio, "%.2f", q);
      snprintf(target, sizeof target, "%s", q >= TARGET ? "ok" : "FAIL");
      if (r->q->mem_limit)
        snprintf(mem, sizeof mem, "%s", r->zql.anon_kib <= MEM_LIMIT_KIB ? "ok" : "FAIL");
      if (r->zql_rows == r->hand_rows)
        snprintf(rows, sizeof rows, "%ld", r->hand_rows);
      else
        snprintf(rows, sizeof rows, "%ld/%ld DIFFER", r->zql_rows, r->hand_rows);
    } else
      snprintf(rows, sizeof rows, "n/a/%ld", r->hand_rows);
    printf("%-16s %9" PRIu64 " %7s %9s %8s %7s %8s %7.3f %10.2f %8.1f %9.1f %6s %6s %4s  %s\n",
           r->q->name, d->ls.events, zs, zev, zmb, zrss, zanon, r->hand.secs,
           ev / r->hand.secs / 1e6, mib(r->hand.maxrss_kib), mib(r->hand.anon_kib), ratio,
           target, mem, rows);
  }
}

static void print_machine(void)
{
  char model[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "model name", 10) == 0) {
        const char *p = strchr(line, ':');
        if (p) {
          p++;
          p += strspn(p, " \t");
          snprintf(model, sizeof model, "%.*s", (int)strcspn(p, "\n"), p);
        }
        break;
      }
    fclose(f);
  }
  long long memkb = 0;
  if ((f = fopen("/proc/meminfo", "r"))) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemTotal: %lld kB", &memkb) == 1)
        break;
    fclose(f);
  }
  struct utsname un;
  char os[200] = "";
  if (uname(&un) == 0)
    snprintf(os, sizeof os, "%s %s %s", un.sysname, un.release, un.machine);
  time_t t = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
  printf("date: %s\nmachine: %ld cores (nproc), CPU %s, %.1f GiB RAM, %s\n", date,
         sysconf(_SC_NPROCESSORS_ONLN), model, (double)memkb / 1048576.0, os);
}

/* The directory of this program as typed (libtool runs bench/.libs/lt-NAME for
 * bench/NAME): the default place of handwritten. */
static void self_dir(const char *argv0, char *out, size_t n)
{
  char buf[PATHMAX];
  snprintf(buf, sizeof buf, "%s", argv0);
  char *libs = strstr(buf, ".libs/");
  if (libs)
    *libs = '\0';
  else {
    char *slash = strrchr(buf, '/');
    if (slash)
      slash[1] = '\0';
    else
      buf[0] = '\0';
  }
  size_t len = strlen(buf);
  if (len == 0)
    snprintf(out, n, ".");
  else {
    if (buf[len - 1] == '/')
      buf[len - 1] = '\0';
    snprintf(out, n, "%s", buf[0] ? buf : "/");
  }
}

/* {==== main ====} */

int main(int argc, char **argv)
{
  cfg_t c = {10000000, 2, 3, 600, "./zql", NULL, false};
  const char *dir = NULL, *only = NULL;
  bool set_events = false, set_repeat = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = strcmp(a, "--events") == 0 || strcmp(a, "--dir") == 0 ||
                 strcmp(a, "--threads") == 0 || strcmp(a, "--zql") == 0 ||
                 strcmp(a, "--handwritten") == 0 || strcmp(a, "--only") == 0 ||
                 strcmp(a, "--repeat") == 0 || strcmp(a, "--timeout") == 0;
    if (takes && !v)
      usage_error("%s needs a value", a);
    if (strcmp(a, "--events") == 0)
      c.events = parse_u64(a, v), set_events = true;
    else if (strcmp(a, "--dir") == 0)
      dir = v;
    else if (strcmp(a, "--threads") == 0) {
      uint64_t t = parse_u64(a, v);
      if (t > 256)
        usage_error("--threads is at most 256");
      c.threads = (unsigned)t;
    } else if (strcmp(a, "--zql") == 0)
      c.zql = v;
    else if (strcmp(a, "--handwritten") == 0)
      c.hand = v;
    else if (strcmp(a, "--only") == 0)
      only = v;
    else if (strcmp(a, "--repeat") == 0)
      c.repeat = (unsigned)parse_u64(a, v), set_repeat = true;
    else if (strcmp(a, "--timeout") == 0)
      c.timeout = (unsigned)parse_u64(a, v);
    else if (strcmp(a, "--quick") == 0)
      c.quick = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else
      usage_error("unknown argument '%s'", a);
    if (takes)
      i++;
  }
  if (c.quick) {
    if (!set_events)
      c.events = 10000;
    if (!set_repeat)
      c.repeat = 1;
  }
  if (c.repeat > 1000)
    usage_error("--repeat is at most 1000");

  /* Which queries. */
  bool run[ZQL_ARRAY_LEN(queries)];
  for (size_t i = 0; i < ZQL_ARRAY_LEN(queries); i++)
    run[i] = only == NULL;
  for (const char *p = only; p && *p;) {
    size_t len = strcspn(p, ",");
    size_t i = 0;
    while (i < ZQL_ARRAY_LEN(queries) &&
           !(strlen(queries[i].name) == len && strncmp(queries[i].name, p, len) == 0))
      i++;
    if (i == ZQL_ARRAY_LEN(queries))
      usage_error("unknown query '%.*s'", (int)len, p);
    run[i] = true;
    p += len + (p[len] == ',');
  }

  char hand_path[PATHMAX];
  if (!c.hand) {
    char sd[PATHMAX];
    self_dir(argv[0], sd, sizeof sd);
    join_path(hand_path, sizeof hand_path, sd, "handwritten");
    c.hand = hand_path;
  }
  if (access(c.hand, X_OK) < 0)
    die("cannot run the hand-written program %s: %s (use --handwritten PATH)", c.hand,
        strerror(errno));

  /* The command as typed: libtool runs bench/.libs/lt-bench_engine for bench/bench_engine. */
  char self[PATHMAX];
  snprintf(self, sizeof self, "%s", argv[0]);
  char *libs = strstr(self, ".libs/");
  if (libs) {
    const char *base = libs + 6;
    if (strncmp(base, "lt-", 3) == 0)
      base += 3;
    memmove(libs, base, strlen(base) + 1);
  }
  printf("command: %s", self);
  for (int i = 1; i < argc; i++)
    printf(" %s", argv[i]);
  putchar('\n');
  print_machine();

  data_t d;
  memset(&d, 0, sizeof d);
  snprintf(d.dir, sizeof d.dir, "%s", dir ? dir : c.quick ? "bench-data-quick" : "bench-data");
  make_dir(d.dir);
  char outdir[PATHMAX];
  join_path(outdir, sizeof outdir, d.dir, "out");
  prepare_data(&d, c.events, c.zql, outdir);
  make_dir(outdir);
  printf("log: %s: %" PRIu64 " events in %zu segment%s, %.1f MB (%.0f bytes per event); %s\n",
         d.dir, d.ls.events, d.ls.segments, d.ls.segments == 1 ? "" : "s", (double)d.ls.bytes / 1e6,
         (double)d.ls.bytes / (double)d.ls.events,
         d.generated ? "generated now" : "reused (the stamp matches)");
  if (d.generated)
    printf("generated in %.1f s by: zql gen %s --data %s\n", d.gen_secs, d.params, d.dir);
  printf("one_project: the most frequent project is \"%s\"\n", d.top);
  printf("threads: %u; warm-up run, then the best of %u round%s (hand, then zql); results "
         "in %s/\n", c.threads, c.repeat, c.repeat == 1 ? "" : "s", outdir);
  printf("hand: %s --data %s --query NAME --threads %u [--project P]\n", c.hand, d.dir,
         c.threads);
  printf("zql:  %s --data %s -c QUERY --threads %u --format ndjson [--mem-limit %s]\n\n",
         c.zql, d.dir, c.threads, MEM_LIMIT);
  printf("queries:\n");
  for (size_t i = 0; i < ZQL_ARRAY_LEN(queries); i++) {
    if (!run[i])
      continue;
    zql_strbuf_t t = ZQL_STRBUF_INIT;
    query_text(&queries[i], d.top, &t);
    printf("  %-16s %s%s\n", queries[i].name, t.buf,
           queries[i].mem_limit ? "   [--mem-limit " MEM_LIMIT "]" : "");
    zql_strbuf_release(&t);
  }
  putchar('\n');
  fflush(stdout);

  result_t res[ZQL_ARRAY_LEN(queries)];
  size_t nres = 0;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(queries); i++)
    if (run[i])
      res[nres++] = run_query(&c, &d, outdir, &queries[i]);

  print_table(res, nres, &d);
  putchar('\n');
  size_t nfail = 0;
  bool same = true; /* every query failed for the same reason: one line */
  for (size_t i = 0; i < nres; i++)
    if (!res[i].zql_ok) {
      same = same && strcmp(res[i].zql_why, res[0].zql_why) == 0;
      nfail++;
    }
  if (nfail > 1 && nfail == nres && same)
    printf("zql n/a for every query: %s\n", res[0].zql_why);
  else
    for (size_t i = 0; i < nres; i++)
      if (!res[i].zql_ok)
        printf("%s: zql n/a: %s\n", res[i].q->name, res[i].zql_why);
  for (size_t i = 0; i < nres; i++)
    if (res[i].zql_ok && res[i].q->mem_limit)
      printf("%s: with --mem-limit %s, zql's peak anonymous memory was %.1f MiB: %s (peak "
             "RSS %.1f MiB, mapped log pages included)\n", res[i].q->name, MEM_LIMIT,
             mib(res[i].zql.anon_kib),
             res[i].zql.anon_kib <= MEM_LIMIT_KIB ? "within the limit" : "OVER the limit",
             mib(res[i].zql.maxrss_kib));
  if (nfail)
    printf("(the zql columns are filled once `%s --data DIR -c QUERY` answers)\n", c.zql);
  printf("ratio = zql events/s / hand events/s; target: every query >= %.2f with 2 threads, "
         "groups_1m's zql peak anonymous memory <= 512 MiB\n"
         "RSS: peak resident set (wait4 ru_maxrss), which counts the pages of the mmapped log "
         "the program touched;\nanon: peak anonymous memory (heap, stacks), sampled every "
         "%ld ms from /proc/PID/statm; MiB\n", TARGET, SAMPLE_NS / 1000000);
  printf("\ndone\n");
  return 0;
}
