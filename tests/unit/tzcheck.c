/*
 * tzcheck.c -- checks zql's TZif reader against glibc on every zone of the tzdata.
 *
 *   tzcheck [--zones N] [--instants M] [--dir DIR] [-v]
 *
 * For every zone file under the zoneinfo directory (zql_tzdb_dir(), or --dir; the posix/
 * and right/ copies, symlinked directories and files that are not TZif are skipped; at
 * most N zones with --zones), zql_tz_offset_at and zql_tz_to_civil are compared with
 * glibc's localtime_r under TZ=":<dir>/<zone>" on a deterministic sample of instants:
 *   - M instants (default 200) spread over 1901..2100 by a fixed linear congruential
 *     sequence, plus the first and last second of every year 1901..2100 in UTC;
 *   - every transition T the zone has within 1970..2037, at T - 1 s, T and T + 1 s.
 * Compared fields: UTC offset, year, month, day, hour, minute, second, weekday, day of
 * the year, DST flag and abbreviation. Each sampled instant also round-trips through
 * zql_tz_from_civil, which must give back an instant showing the same wall-clock time,
 * no later than the sampled one (a fold resolves to the earlier instant).
 *
 * Why 1901..2100: that is where glibc reads the same 64-bit data we do. Before 1901-12-13
 * (the 32-bit limit) zic's "fat" files hold no transitions either; after 2037 both sides
 * evaluate the footer's POSIX TZ rule. Both ends are checked as ordinary instants.
 *
 * Prints "tzcheck: Z zones, I instants, K mismatches" and exits 1 on any mismatch, after
 * listing the first ones (all of them with -v). Exit 2: usage or setup error.
 *
 * This is a test program, so unlike the library it uses the process-global TZ.
 */
#include "runtime/base/zql_common.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/base/alloc.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/tzdb.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define MAX_SHOWN 20
#define YEAR_LO 1901
#define YEAR_HI 2100

typedef struct check {
  const char *dir;
  long max_zones;
  long instants;
  bool verbose;
  long zones, checked, mismatches;
} check_t;

static void mismatch(check_t *c, const char *zone, int64_t t, const char *what)
{
  c->mismatches++;
  if (c->verbose || c->mismatches <= MAX_SHOWN)
    fprintf(stderr, "tzcheck: %s at %" PRId64 " s: %s\n", zone, t, what);
}

/* Compare one instant (UTC seconds) of zone z with glibc (TZ already set). */
static void check_instant(check_t *c, const char *zone, const zql_tz_t *z, int64_t t)
{
  time_t tt = (time_t)t;
  struct tm tm;
  c->checked++;
  if (!localtime_r(&tt, &tm)) {
    mismatch(c, zone, t, "glibc localtime_r failed");
    return;
  }
  zql_civil_t cv;
  zql_tz_to_civil(z, t * 1000, &cv);
  int32_t off = zql_tz_offset_at(z, t * 1000);
  char buf[256];
  if (off != tm.tm_gmtoff || cv.offset != tm.tm_gmtoff || cv.year != tm.tm_year + 1900 ||
      cv.month != tm.tm_mon + 1 || cv.day != tm.tm_mday || cv.hour != tm.tm_hour ||
      cv.minute != tm.tm_min || cv.second != tm.tm_sec || cv.wday % 7 != tm.tm_wday ||
      cv.yday != tm.tm_yday + 1 || cv.isdst != (tm.tm_isdst > 0) ||
      strcmp(cv.abbr, tm.tm_zone) != 0) {
    snprintf(buf, sizeof buf,
             "zql %04d-%02d-%02d %02d:%02d:%02d wd%d yd%d off %d dst %d %s | glibc "
             "%04d-%02d-%02d %02d:%02d:%02d wd%d yd%d off %ld dst %d %s",
             (int)cv.year, cv.month, cv.day, cv.hour, cv.minute, cv.second, cv.wday % 7,
             cv.yday, (int)off, cv.isdst, cv.abbr, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_wday, tm.tm_yday + 1,
             (long)tm.tm_gmtoff, tm.tm_isdst, tm.tm_zone);
    mismatch(c, zone, t, buf);
    return;
  }
  /* round trip: the wall-clock time back to an instant */
  int64_t back;
  zql_civil_t cv2;
  if (!zql_tz_from_civil(z, &cv, ZQL_TZ_GAP_FAIL, &back)) {
    mismatch(c, zone, t, "zql_tz_from_civil refused an existing local time");
    return;
  }
  zql_tz_to_civil(z, back, &cv2);
  if (back > t * 1000 || cv2.year != cv.year || cv2.month != cv.month || cv2.day != cv.day ||
      cv2.hour != cv.hour || cv2.minute != cv.minute || cv2.second != cv.second) {
    snprintf(buf, sizeof buf, "round trip gave %" PRId64 " ms", back);
    mismatch(c, zone, t, buf);
  }
}

/* A fixed 64-bit LCG (Knuth's MMIX constants): the same sample on every run. */
static uint64_t lcg(uint64_t *s)
{
  *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
  return *s >> 11;
}

static void check_zone(check_t *c, const char *zone, const char *path)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  const zql_tz_t *z;
  int rc = zql_tz_load(zone, &z, &err);
  if (rc < 0) {
    char buf[512];
    snprintf(buf, sizeof buf, "zql_tz_load failed: %s", err.buf);
    mismatch(c, zone, 0, buf);
    zql_strbuf_release(&err);
    return;
  }
  zql_strbuf_release(&err);
  char tzvar[PATH_MAX + 2];
  snprintf(tzvar, sizeof tzvar, ":%s", path);
  setenv("TZ", tzvar, 1);
  tzset();
  c->zones++;

  int64_t lo = zql_days_from_civil(YEAR_LO, 1, 1) * 86400;
  int64_t hi = zql_days_from_civil(YEAR_HI + 1, 1, 1) * 86400;
  uint64_t seed = 0x7a716c747a636b31u; /* the same sample for every zone */
  for (long i = 0; i < c->instants; i++)
    check_instant(c, zone, z, lo + (int64_t)(lcg(&seed) % (uint64_t)(hi - lo)));
  for (int y = YEAR_LO; y <= YEAR_HI; y++) {
    int64_t t = zql_days_from_civil(y, 1, 1) * 86400;
    check_instant(c, zone, z, t);
    check_instant(c, zone, z, t - 1);
  }
  /* every transition within 1970..2037, +-1 s */
  int64_t t = zql_days_from_civil(1970, 1, 1) * 86400000 - 1;
  int64_t end = zql_days_from_civil(2038, 1, 1) * 86400000, next;
  while (zql_tz_next_transition(z, t, &next) && next < end) {
    if (next <= t) {
      mismatch(c, zone, next / 1000, "zql_tz_next_transition went backwards");
      break;
    }
    int64_t s = next / 1000;
    check_instant(c, zone, z, s - 1);
    check_instant(c, zone, z, s);
    check_instant(c, zone, z, s + 1);
    if (zql_tz_offset_at(z, next - 1) == zql_tz_offset_at(z, next)) {
      zql_civil_t a, b;
      zql_tz_to_civil(z, next - 1, &a);
      zql_tz_to_civil(z, next, &b);
      if (a.isdst == b.isdst && strcmp(a.abbr, b.abbr) == 0)
        mismatch(c, zone, s, "a transition that changes nothing");
    }
    t = next;
  }
}

static bool is_tzif_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  char magic[4];
  bool ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
  fclose(f);
  return ok;
}

/* Visit dir/rel (rel "" at the top) and below. */
static void walk(check_t *c, const char *rel, int depth)
{
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s%s%s", c->dir, *rel ? "/" : "", rel);
  DIR *d = opendir(path);
  if (!d)
    return;
  /* read the names first and sort them: the order (and --zones N) must not depend on
   * the directory's order */
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (depth == 0 && (strcmp(de->d_name, "posix") == 0 || strcmp(de->d_name, "right") == 0))
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = zql_reallocarray(names, cap, sizeof *nn);
      if (!nn)
        break;
      names = nn;
    }
    if (!(names[n] = zql_strndup(de->d_name, strlen(de->d_name))))
      break;
    n++;
  }
  closedir(d);
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char *tmp = names[j];
      names[j] = names[j - 1];
      names[j - 1] = tmp;
    }
  for (size_t i = 0; i < n; i++) {
    char sub[PATH_MAX], full[PATH_MAX];
    int a = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
    int b = snprintf(full, sizeof full, "%s/%s", c->dir, sub);
    if (a < 0 || (size_t)a >= sizeof sub || b < 0 || (size_t)b >= sizeof full)
      continue;
    struct stat st, lst;
    if (c->max_zones >= 0 && c->zones >= c->max_zones)
      break;
    if (lstat(full, &lst) != 0 || stat(full, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      if (!S_ISLNK(lst.st_mode) && depth < 4)
        walk(c, sub, depth + 1);
    } else if (S_ISREG(st.st_mode) && is_tzif_file(full)) {
      check_zone(c, sub, full);
    }
  }
  for (size_t i = 0; i < n; i++)
    zql_free(names[i]);
  zql_free(names);
}

static long parse_count(const char *s)
{
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end && v >= 0 ? v : -1;
}

int main(int argc, char **argv)
{
  check_t c = {NULL, -1, 200, false, 0, 0, 0};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) {
      c.verbose = true;
    } else if (i + 1 < argc && strcmp(argv[i], "--zones") == 0) {
      c.max_zones = parse_count(argv[++i]);
      if (c.max_zones < 0)
        goto usage;
    } else if (i + 1 < argc && strcmp(argv[i], "--instants") == 0) {
      c.instants = parse_count(argv[++i]);
      if (c.instants < 0)
        goto usage;
    } else if (i + 1 < argc && strcmp(argv[i], "--dir") == 0) {
      c.dir = argv[++i];
    } else {
      goto usage;
    }
  }
  if (c.dir)
    setenv("ZQL_ZONEINFO", c.dir, 1);
  c.dir = zql_tzdb_dir();
  walk(&c, "", 0);
  zql_tz_cache_clear();
  if (c.zones == 0) {
    fprintf(stderr, "tzcheck: no zone files under '%s'\n", c.dir);
    return 2;
  }
  printf("tzcheck: %ld zones, %ld instants, %ld mismatches\n", c.zones, c.checked,
         c.mismatches);
  return c.mismatches ? 1 : 0;

usage:
  fprintf(stderr, "usage: tzcheck [--zones N] [--instants M] [--dir DIR] [-v]\n");
  return 2;
}
