/*
 * tzdb.c -- IANA time-zone names checked against the system tzdata files (layer 0).
 *
 * Pipeline position: the analyzer (stage 2b) calls zql_tzdb_valid() for every constant
 * zone name (`bucket(... tz "Zone")`, trunc/format_time/year... tz arguments, date(s,
 * tz)) and zql_tzdb_suggest() for the hint of an E3015 error. The engine's TZif reader
 * (RFC 8536) will live here too and use zql_tzdb_dir().
 *
 * Interface (tzdb.h): zql_tzdb_dir(), zql_tzdb_valid(name), zql_tzdb_suggest(name, buf,
 * size). Nothing is cached: every call reads the environment and the file system, so
 * the functions are thread-safe as long as nobody calls setenv() concurrently.
 *
 * Validity: a name is checked syntactically first (non-empty, at most ZONE_NAME_MAX
 * bytes, no leading '/', only [A-Za-z0-9_+-/], no empty, "." or ".." component), so it
 * can never name a file outside the tzdata directory; then the file must be a regular
 * file starting with the TZif magic. Directories ("America") and the database's text
 * files ("zone.tab", "leapseconds") are thereby rejected.
 *
 * Suggestions walk the tzdata tree once per call (about 1800 files on a full tzdata;
 * bounded by WALK_MAX_DEPTH and WALK_MAX_FILES), skipping the "posix" and "right"
 * copies and symlinked directories, and rank every zone file against the name:
 *   0  equal ignoring case (and ' ' == '_'):   "america/new_york" -> America/New_York
 *   1  same last component, likewise:          "New_York", "paris" -> Europe/Paris
 *   2  full name within edit distance 2:       "Europe/Pariss" -> Europe/Paris
 *   3  last components within edit distance 2: "Asia/Tokio" -> Asia/Tokyo
 * Lower rank, then lower distance, then the byte-wise smaller name wins, so the answer
 * does not depend on directory order. Only files that pass zql_tzdb_valid's tests count.
 */
#include "runtime/base/zql_common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/strdist.h"
#include "runtime/base/tzdb.h"

#ifndef ZQL_ZONEINFO_DIR
#define ZQL_ZONEINFO_DIR "/usr/share/zoneinfo"
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define ZONE_NAME_MAX 255
#define WALK_MAX_DEPTH 4      /* deepest real zone: America/Argentina/Buenos_Aires (3) */
#define WALK_MAX_FILES 20000  /* stop walking a runaway tree */
#define SUGGEST_MAX_DIST 2

const char *zql_tzdb_dir(void)
{
  const char *d = getenv("ZQL_ZONEINFO");
  if (d && *d)
    return d;
  d = getenv("TZDIR");
  if (d && *d)
    return d;
  return ZQL_ZONEINFO_DIR;
}

static bool zone_char_ok(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '+' || c == '-' || c == '/';
}

/* The syntactic half of zql_tzdb_valid: safe to append to the tzdata directory. */
static bool zone_name_ok(const char *name)
{
  if (!name || !*name || name[0] == '/')
    return false;
  size_t len = strlen(name);
  if (len > ZONE_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!zone_char_ok(name[i]))
      return false;
  /* components: none empty ("a//b", "a/"), none "." or ".." (excluded by the character
   * set already; checked again so that widening the set cannot open a hole) */
  const char *p = name;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    if (!slash)
      return true;
    p = slash + 1;
  }
}

/* True when `path` is a regular file (after symlinks) that starts with "TZif". */
static bool is_tzif(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return false;
  struct stat st;
  bool ok = false;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    char magic[4];
    size_t got = 0;
    while (got < sizeof magic) {
      ssize_t r = read(fd, magic + got, sizeof magic - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      got += (size_t)r;
    }
    ok = got == sizeof magic && memcmp(magic, "TZif", 4) == 0;
  }
  close(fd);
  return ok;
}

bool zql_tzdb_valid(const char *name)
{
  if (!zone_name_ok(name))
    return false;
  char path[PATH_MAX];
  int n = snprintf(path, sizeof path, "%s/%s", zql_tzdb_dir(), name);
  if (n < 0 || (size_t)n >= sizeof path)
    return false;
  return is_tzif(path);
}

/* {==== suggestions ======================================================================= */

/* Case fold for zone comparisons: ASCII lower case, and ' ' counts as '_'. */
static int fold(char c)
{
  return c == ' ' ? '_' : tolower((unsigned char)c);
}

static bool same_name(const char *a, const char *b)
{
  for (; *a && *b; a++, b++)
    if (fold(*a) != fold(*b))
      return false;
  return *a == *b;
}

static const char *last_component(const char *s)
{
  const char *slash = strrchr(s, '/');
  return slash ? slash + 1 : s;
}


typedef struct walk {
  const char *name;          /* the name asked about */
  const char *name_last;     /* its last component */
  size_t dirlen;             /* strlen(tzdata dir): path + dirlen + 1 is the zone name */
  size_t files;              /* files looked at so far (WALK_MAX_FILES) */
  int best_rank;             /* rank * (SUGGEST_MAX_DIST + 1) + distance; INT_MAX: none */
  char best[ZONE_NAME_MAX + 1];
  char path[PATH_MAX];       /* the tzdata dir, then the entry being looked at */
} walk_t;

/* Rank of zone `zone` against the name (see the file comment); INT_MAX: no match. */
static int rank_zone(const walk_t *w, const char *zone)
{
  const int step = SUGGEST_MAX_DIST + 1;
  if (same_name(w->name, zone))
    return 0;
  const char *zone_last = last_component(zone);
  if (same_name(w->name_last, zone_last))
    return step;
  int d = zql_edit_distance(w->name, zone, SUGGEST_MAX_DIST);
  if (d <= SUGGEST_MAX_DIST && (size_t)d < strlen(w->name))
    return 2 * step + d;
  d = zql_edit_distance(w->name_last, zone_last, SUGGEST_MAX_DIST);
  if (d <= SUGGEST_MAX_DIST && (size_t)d < strlen(w->name_last))
    return 3 * step + d;
  return INT_MAX;
}

/* The file at w->path, named `zone` relative to the tzdata directory, is a candidate. */
static void consider(walk_t *w, const char *zone)
{
  if (!zone_name_ok(zone))
    return;
  int r = rank_zone(w, zone);
  if (r == INT_MAX || r > w->best_rank ||
      (r == w->best_rank && strcmp(zone, w->best) >= 0))
    return;
  if (!is_tzif(w->path))
    return;
  w->best_rank = r;
  snprintf(w->best, sizeof w->best, "%s", zone);
}

/* Visit the directory w->path (of length len) and below; depth 0 is the tzdata root. */
static void walk_dir(walk_t *w, size_t len, int depth)
{
  DIR *dir = opendir(w->path);
  if (!dir)
    return;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL && w->best_rank > 0 && w->files < WALK_MAX_FILES) {
    const char *ent = de->d_name;
    if (ent[0] == '.')
      continue;
    if (depth == 0 && (strcmp(ent, "posix") == 0 || strcmp(ent, "right") == 0))
      continue;
    size_t elen = strlen(ent);
    if (len + 1 + elen >= sizeof w->path)
      continue;
    w->path[len] = '/';
    memcpy(w->path + len + 1, ent, elen + 1);
    struct stat st;
    if (lstat(w->path, &st) == 0) {
      bool link = S_ISLNK(st.st_mode);
      if (link && stat(w->path, &st) != 0)
        st.st_mode = 0; /* dangling link */
      if (S_ISDIR(st.st_mode)) {
        if (!link && depth + 1 < WALK_MAX_DEPTH)
          walk_dir(w, len + 1 + elen, depth + 1);
      } else if (S_ISREG(st.st_mode)) {
        w->files++;
        consider(w, w->path + w->dirlen + 1);
      }
    }
    w->path[len] = '\0';
  }
  closedir(dir);
}

bool zql_tzdb_suggest(const char *name, char *buf, size_t bufsize)
{
  if (!name || !*name || strlen(name) > ZONE_NAME_MAX || !buf || bufsize == 0)
    return false;
  walk_t *w = zql_malloc(sizeof *w); /* ~4.4 KiB: keep it off small thread stacks */
  if (!w)
    return false;
  w->name = name;
  w->name_last = last_component(name);
  w->files = 0;
  w->best_rank = INT_MAX;
  w->best[0] = '\0';
  const char *dir = zql_tzdb_dir();
  w->dirlen = strlen(dir);
  bool found = false;
  if (w->dirlen > 0 && w->dirlen < sizeof w->path) {
    memcpy(w->path, dir, w->dirlen + 1);
    walk_dir(w, w->dirlen, 0);
    found = w->best_rank != INT_MAX && strlen(w->best) < bufsize;
    if (found)
      memcpy(buf, w->best, strlen(w->best) + 1);
  }
  zql_free(w);
  return found;
}

/* }==== */
