/*
 * zqld_config.c -- zqld's configuration: the key table, value parsers, the INI reader,
 * environment and flag overrides, cross-key validation and --check-config output
 * (runtime services; contract in zqld_config.h, user reference in docs/zqld.md).
 *
 * zqld's main loads a zql_zqld_config_t at start and on every SIGHUP (into a new struct
 * that replaces the running one only when it validates), then hands the typed fields to
 * the ingest endpoints, the event log writer, the scheduler and HTTP.
 *
 * Design: one static table drives everything. A row names the section, key, environment
 * variable, type, default text, range and the field's offset in the struct; the setter
 * parses a value by the row's type, checks the range, and stores it unless the key
 * already holds a value from a higher-priority source. Defaults are the table's text run
 * through the same parsers (zql_zqld_config_init), so the documentation, the
 * --check-config output and the real defaults cannot drift apart; a unit test checks
 * that every default parses and prints back to itself.
 *
 * The INI dialect is the common one (Python's configparser without interpolation, git
 * config without subsections): "[section]", "key = value", '#' and ';' comments at the
 * start of a line or after whitespace, optional double quotes with C escapes.
 */
#include "runtime/base/zql_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/strdist.h"
#include "runtime/evlog.h"
#include "runtime/log.h"
#include "runtime/zqld_config.h"

/* ==== the key table ================================================================= */

static const char *const fsync_names[] = {"batch", "always", "none", NULL};
_Static_assert(ZQL_EVLOG_SYNC_BATCH == 0 && ZQL_EVLOG_SYNC_ALWAYS == 1 && ZQL_EVLOG_SYNC_NONE == 2,
               "fsync_names[] follows zql_evlog_sync_t");

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define MS_SEC 1000ll
#define MS_MIN (60 * MS_SEC)
#define MS_HOUR (60 * MS_MIN)
#define MS_DAY (24 * MS_HOUR)

typedef struct row {
  zql_zqld_keyinfo_t info;
  size_t off; /* of the field in zql_zqld_config_t */
} row_t;

#define F(field) offsetof(zql_zqld_config_t, field)
#define ROW_STR(sec, key, env, type, def, empty, field, help)                                \
  {{sec, key, env, type, def, empty, 0, 0, 0, 0, NULL, help}, F(field)}
#define ROW_NUM(sec, key, env, type, def, empty, lo, hi, field, help)                        \
  {{sec, key, env, type, def, empty, lo, hi, 0, 0, NULL, help}, F(field)}
#define ROW_SIZE(sec, key, env, def, empty, lo, hi, field, help)                             \
  {{sec, key, env, ZQL_ZQLD_T_SIZE, def, empty, 0, 0, lo, hi, NULL, help}, F(field)}

static const row_t rows[ZQL_ZQLD_NKEYS] = {
    [ZQL_ZQLD_DATA] =
        ROW_STR("zqld", "data", "ZQLD_ZQLD_DATA", ZQL_ZQLD_T_PATH, "/var/lib/zql", false, data_dir,
                "the data directory: event log, results store, dead letters"),
    [ZQL_ZQLD_LOG_LEVEL] =
        ROW_NUM("zqld", "log_level", "ZQLD_ZQLD_LOG_LEVEL", ZQL_ZQLD_T_LEVEL, "info", false, 0, 0,
                log_level, "the least severe messages logged: error, warn, info or debug"),
    [ZQL_ZQLD_PID_FILE] =
        ROW_STR("zqld", "pid_file", "ZQLD_ZQLD_PID_FILE", ZQL_ZQLD_T_PATH, "", true, pid_file,
                "write the daemon's pid to this file (empty: no pid file)"),
    [ZQL_ZQLD_INGEST_BSON] = ROW_STR(
        "ingest", "bson", "ZQLD_INGEST_BSON", ZQL_ZQLD_T_ENDPOINT, "tcp://127.0.0.1:6543", true,
        ingest_bson, "ZeroMQ PULL endpoint for BSON events, one document per frame (Zarkov)"),
    [ZQL_ZQLD_INGEST_JSON] =
        ROW_STR("ingest", "json", "ZQLD_INGEST_JSON", ZQL_ZQLD_T_ENDPOINT, "tcp://127.0.0.1:6544",
                true, ingest_json, "ZeroMQ PULL endpoint for JSON events, one object per frame"),
    [ZQL_ZQLD_INGEST_ACKED] = ROW_STR(
        "ingest", "acked", "ZQLD_INGEST_ACKED", ZQL_ZQLD_T_ENDPOINT, "tcp://127.0.0.1:6546", true,
        ingest_acked, "ZeroMQ ROUTER endpoint for acknowledged batches (zql send --ack)"),
    [ZQL_ZQLD_INGEST_PUB] =
        ROW_STR("ingest", "pub", "ZQLD_INGEST_PUB", ZQL_ZQLD_T_ENDPOINT, "tcp://127.0.0.1:6545",
                true, ingest_pub, "ZeroMQ PUB endpoint for notifications (agg_complete)"),
    [ZQL_ZQLD_FSYNC] = {{"ingest", "fsync", "ZQLD_INGEST_FSYNC", ZQL_ZQLD_T_ENUM, "batch", false, 0,
                         0, 0, 0, fsync_names,
                         "event log durability: always (fdatasync before each ack), batch "
                         "(at most every fsync_interval), none (on close only)"},
                        F(fsync)},
    [ZQL_ZQLD_FSYNC_INTERVAL] =
        ROW_NUM("ingest", "fsync_interval", "ZQLD_INGEST_FSYNC_INTERVAL", ZQL_ZQLD_T_DURATION,
                "10ms", false, 1, 60 * MS_SEC, fsync_interval_ms,
                "fsync = batch: the longest time between two fdatasync calls"),
    [ZQL_ZQLD_QUEUE_EVENTS] =
        ROW_NUM("ingest", "queue_events", "ZQLD_INGEST_QUEUE_EVENTS", ZQL_ZQLD_T_INT, "65536",
                false, 1, 100000000, queue_events,
                "events waiting for the log writer before the endpoints push back"),
    [ZQL_ZQLD_QUEUE_BYTES] =
        ROW_SIZE("ingest", "queue_bytes", "ZQLD_INGEST_QUEUE_BYTES", "64MiB", false, 64 * KIB,
                 64 * GIB, queue_bytes, "bytes of events waiting for the log writer (the same)"),
    [ZQL_ZQLD_MAX_EVENT_BYTES] = ROW_SIZE(
        "ingest", "max_event_bytes", "ZQLD_INGEST_MAX_EVENT_BYTES", "1MiB", false, KIB, 16 * MIB,
        max_event_bytes, "the largest accepted event (BSON bytes; hard limit 16MiB)"),
    [ZQL_ZQLD_HWM] =
        ROW_NUM("ingest", "hwm", "ZQLD_INGEST_HWM", ZQL_ZQLD_T_INT, "10000", false, 0, 10000000,
                hwm, "ZeroMQ high-water mark of every socket, in messages (0: none)"),
    [ZQL_ZQLD_DEAD_LETTER] =
        ROW_STR("ingest", "dead_letter", "ZQLD_INGEST_DEAD_LETTER", ZQL_ZQLD_T_PATH, "", true,
                dead_letter, "directory of rejected events (empty: DATA/deadletter)"),
    [ZQL_ZQLD_HTTP_LISTEN] =
        ROW_STR("http", "listen", "ZQLD_HTTP_LISTEN", ZQL_ZQLD_T_ADDRESS, "127.0.0.1:8081", true,
                http_listen, "HOST:PORT of the HTTP API (empty: no HTTP)"),
    [ZQL_ZQLD_HTTP_TOKENS_FILE] = ROW_STR(
        "http", "tokens_file", "ZQLD_HTTP_TOKENS_FILE", ZQL_ZQLD_T_PATH, "", true, http_tokens_file,
        "bearer tokens, one per line, required by the HTTP API (empty: no auth)"),
    [ZQL_ZQLD_HTTP_MAX_BODY] =
        ROW_SIZE("http", "max_body", "ZQLD_HTTP_MAX_BODY", "64MiB", false, KIB, 4 * GIB,
                 http_max_body, "the largest HTTP request body as received (a gzip body may inflate to 16 times that)"),
    [ZQL_ZQLD_CURVE_SECRET_KEY_FILE] =
        ROW_STR("security", "curve_secret_key_file", "ZQLD_SECURITY_CURVE_SECRET_KEY_FILE",
                ZQL_ZQLD_T_PATH, "", true, curve_secret_key_file,
                "the server's CURVE key pair (zql keygen); empty: no CURVE"),
    [ZQL_ZQLD_CURVE_ALLOW_FILE] = ROW_STR(
        "security", "curve_allow_file", "ZQLD_SECURITY_CURVE_ALLOW_FILE", ZQL_ZQLD_T_PATH, "", true,
        curve_allow_file, "client public keys allowed to connect, Z85, one per line"),
    [ZQL_ZQLD_MAX_PARALLEL] =
        ROW_NUM("scheduler", "max_parallel", "ZQLD_SCHEDULER_MAX_PARALLEL", ZQL_ZQLD_T_INT, "2",
                false, 1, 256, max_parallel, "aggregate runs at the same time"),
    [ZQL_ZQLD_RETRY_MIN] =
        ROW_NUM("scheduler", "retry_min", "ZQLD_SCHEDULER_RETRY_MIN", ZQL_ZQLD_T_DURATION, "1s",
                false, 1, MS_DAY, retry_min_ms, "first delay before retrying a failed run"),
    [ZQL_ZQLD_RETRY_MAX] =
        ROW_NUM("scheduler", "retry_max", "ZQLD_SCHEDULER_RETRY_MAX", ZQL_ZQLD_T_DURATION, "5m",
                false, 1, 7 * MS_DAY, retry_max_ms, "the retry delay doubles up to this"),
    [ZQL_ZQLD_SETTLE] = ROW_NUM(
        "scheduler", "settle", "ZQLD_SCHEDULER_SETTLE", ZQL_ZQLD_T_DURATION, "200ms", false, 0,
        MS_HOUR, settle_ms,
        "on event: triggers within this window make one run (an aggregate's own settle wins)"),
    [ZQL_ZQLD_THREADS_PER_RUN] =
        ROW_NUM("scheduler", "threads_per_run", "ZQLD_SCHEDULER_THREADS_PER_RUN", ZQL_ZQLD_T_INT,
                "1", false, 1, 256, threads_per_run, "executor threads of one aggregate run"),
    [ZQL_ZQLD_RETAIN] =
        ROW_NUM("log", "retain", "ZQLD_LOG_RETAIN", ZQL_ZQLD_T_DURATION, "", true, 1,
                36500 * MS_DAY, retain_ms, "remove raw events older than this (empty: keep them)"),
    [ZQL_ZQLD_RETAIN_BYTES] =
        ROW_SIZE("log", "retain_bytes", "ZQLD_LOG_RETAIN_BYTES", "", true, MIB, UINT64_MAX,
                 retain_bytes, "remove the oldest raw events beyond this size (empty: keep)"),
};

static const char *const sections[] = {"zqld", "ingest", "http", "security", "scheduler", "log"};

static const char no_file[] = "";

const zql_zqld_keyinfo_t *zql_zqld_config_key(zql_zqld_key_t k)
{
  if ((int)k < 0 || k >= ZQL_ZQLD_NKEYS)
    return NULL;
  return &rows[k].info;
}

int zql_zqld_config_find(const char *section, const char *key)
{
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++)
    if (strcmp(rows[k].info.section, section) == 0 && strcmp(rows[k].info.key, key) == 0)
      return k;
  return -1;
}

int zql_zqld_config_find_dotted(const char *name)
{
  const char *dot = strchr(name, '.');
  if (!dot)
    return -1;
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    size_t sl = strlen(rows[k].info.section);
    if ((size_t)(dot - name) == sl && strncmp(name, rows[k].info.section, sl) == 0 &&
        strcmp(dot + 1, rows[k].info.key) == 0)
      return k;
  }
  return -1;
}

const char *zql_zqld_type_name(zql_zqld_type_t t)
{
  static const char *const n[] = {"endpoint", "address",  "path", "int",
                                  "size",     "duration", "enum", "level"};
  return (unsigned)t < ZQL_ARRAY_LEN(n) ? n[t] : "?";
}

const char *zql_zqld_src_name(zql_zqld_src_t s)
{
  static const char *const n[] = {"default", "file", "env", "flag"};
  return (unsigned)s < ZQL_ARRAY_LEN(n) ? n[s] : "?";
}

static bool is_string_type(zql_zqld_type_t t)
{
  return t == ZQL_ZQLD_T_ENDPOINT || t == ZQL_ZQLD_T_ADDRESS || t == ZQL_ZQLD_T_PATH;
}

typedef const char *cstr_t;
#define FIELD(cfg, k, type) ((type *)((char *)(cfg) + rows[k].off))
#define CFIELD(cfg, k, type) ((const type *)((const char *)(cfg) + rows[k].off))

/* ==== errors ========================================================================= */

void zql_zqld_errs_init(zql_zqld_errs_t *e)
{
  e->items = NULL;
  e->n = e->cap = 0;
  e->oom = false;
}

void zql_zqld_errs_release(zql_zqld_errs_t *e)
{
  for (size_t i = 0; i < e->n; i++)
    zql_free(e->items[i]);
  zql_free(e->items);
  zql_zqld_errs_init(e);
}

void zql_zqld_errs_print(const zql_zqld_errs_t *e, FILE *f)
{
  for (size_t i = 0; i < e->n; i++)
    fprintf(f, "%s\n", e->items[i]);
  if (e->oom)
    fprintf(f, "zqld: out of memory while reporting configuration errors\n");
}

/* The state of one public call: where errors go and what it returns. */
typedef struct ctx {
  zql_zqld_errs_t *errs;
  int rc;
} ctx_t;

static void nomem(ctx_t *c)
{
  c->rc = ZQL_E_NOMEM;
  if (c->errs)
    c->errs->oom = true;
}

static void err_add(ctx_t *c, const char *fmt, ...) ZQL_PRINTF(2, 3);
static void err_add(ctx_t *c, const char *fmt, ...)
{
  if (c->rc == 0)
    c->rc = ZQL_E_USAGE;
  zql_zqld_errs_t *e = c->errs;
  if (!e)
    return;
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(&sb, fmt, ap);
  va_end(ap);
  char *msg = sb.oom ? NULL : zql_strbuf_detach(&sb, NULL);
  if (msg && e->n == e->cap) {
    size_t cap = e->cap ? 2 * e->cap : 8;
    char **items = zql_reallocarray(e->items, cap, sizeof *items);
    if (!items) {
      zql_free(msg);
      msg = NULL;
    } else {
      e->items = items;
      e->cap = cap;
    }
  }
  if (!msg) {
    zql_strbuf_release(&sb);
    nomem(c);
    return;
  }
  e->items[e->n++] = msg;
}

/* "F:L: ", "environment ZQLD_X: ", "command line: " or "" for a value of key k from src. */
static void where_text(char *out, size_t cap, const char *file, zql_zqld_key_t k,
                       zql_zqld_src_t src, int line)
{
  switch (src) {
  case ZQL_ZQLD_SRC_FILE: snprintf(out, cap, "%s:%d: ", file, line); break;
  case ZQL_ZQLD_SRC_ENV: snprintf(out, cap, "environment %s: ", rows[k].info.env); break;
  case ZQL_ZQLD_SRC_FLAG: snprintf(out, cap, "command line: "); break;
  default: out[0] = '\0'; break;
  }
}

/* ==== value parsers ================================================================== */

const char *zql_zqld_parse_int(const char *s, int64_t *out)
{
  const char *p = s;
  bool neg = *p == '-';
  if (*p == '-' || *p == '+')
    p++;
  if (*p < '0' || *p > '9')
    return "not an integer";
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - d)
      return "too large";
    v = v * 10 + d;
  }
  if (*p)
    return "not an integer";
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
    return "too large";
  *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
  return NULL;
}

static bool ieq(const char *a, size_t n, const char *b)
{
  if (strlen(b) != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    char x = a[i] >= 'a' && a[i] <= 'z' ? (char)(a[i] - 32) : a[i];
    if (x != b[i])
      return false;
  }
  return true;
}

const char *zql_zqld_parse_size(const char *s, uint64_t *out)
{
  static const struct {
    const char *unit; /* upper case */
    uint64_t mul;
  } units[] = {{"", 1},
               {"B", 1},
               {"K", KIB},
               {"KIB", KIB},
               {"KB", 1000},
               {"M", MIB},
               {"MIB", MIB},
               {"MB", 1000000},
               {"G", GIB},
               {"GIB", GIB},
               {"GB", 1000000000},
               {"T", 1024 * GIB},
               {"TIB", 1024 * GIB},
               {"TB", 1000000000000ull}};
  const char *p = s;
  if (*p < '0' || *p > '9')
    return "not a size (a whole number with an optional unit, such as 64MiB)";
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - d)
      return "too large";
    v = v * 10 + d;
  }
  if (*p == '.')
    return "not a size (a whole number with an optional unit, such as 64MiB)";
  while (*p == ' ')
    p++;
  size_t n = strlen(p);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(units); i++)
    if (ieq(p, n, units[i].unit)) {
      if (v && units[i].mul > UINT64_MAX / v)
        return "too large";
      *out = v * units[i].mul;
      return NULL;
    }
  return "unknown unit (B, K/KiB, M/MiB, G/GiB, T/TiB are powers of 1024; KB, MB, GB, TB "
         "powers of 1000)";
}

const char *zql_zqld_parse_duration(const char *s, int64_t *ms)
{
  static const struct {
    const char *unit;
    int64_t ms;
  } units[] = {{"w", 7 * MS_DAY}, {"d", MS_DAY}, {"h", MS_HOUR},
               {"m", MS_MIN},     {"s", MS_SEC}, {"ms", 1}};
  if (strcmp(s, "0") == 0) {
    *ms = 0;
    return NULL;
  }
  const char *p = s;
  int64_t total = 0;
  int last = -1;
  if (!*p)
    return "not a duration";
  while (*p) {
    if (*p < '0' || *p > '9')
      return "not a duration (integer and unit parts such as 10ms, 5m or 1h30m)";
    int64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (v > INT64_MAX / 10 || v * 10 > INT64_MAX - (*p - '0'))
        return "too large";
      v = v * 10 + (*p - '0');
    }
    if (*p == '.')
      return "not a duration (integer and unit parts such as 10ms, 5m or 1h30m)";
    const char *u = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
      p++;
    if (p == u)
      return "a unit is required: ms, s, m, h, d or w";
    int which = -1;
    for (int i = 0; i < (int)ZQL_ARRAY_LEN(units); i++)
      if ((size_t)(p - u) == strlen(units[i].unit) &&
          strncmp(u, units[i].unit, (size_t)(p - u)) == 0)
        which = i;
    if (which < 0)
      return "unknown unit (ms, s, m, h, d or w)";
    if (which <= last)
      return "units must go from the largest to the smallest, each once (1h30m)";
    last = which;
    if (v > INT64_MAX / units[which].ms || total > INT64_MAX - v * units[which].ms)
      return "too large";
    total += v * units[which].ms;
  }
  *ms = total;
  return NULL;
}

/* HOST:PORT (HOST: "*", [IPv6], an IPv4 address or a host/interface name). Sets the host
 * span and the port. */
static const char *parse_hostport(const char *s, const char **host, size_t *hlen, unsigned *port)
{
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s)
    return "expected HOST:PORT";
  const char *h = s;
  size_t hl = (size_t)(colon - s);
  if (h[0] == '[') {
    char buf[64];
    unsigned char addr[16];
    if (h[hl - 1] != ']' || hl - 2 >= sizeof buf)
      return "bad IPv6 address (write [::1]:PORT)";
    memcpy(buf, h + 1, hl - 2);
    buf[hl - 2] = '\0';
    if (inet_pton(AF_INET6, buf, addr) != 1)
      return "bad IPv6 address (write [::1]:PORT)";
  } else if (!(hl == 1 && h[0] == '*')) {
    bool digits_dots = true;
    for (size_t i = 0; i < hl; i++) {
      char c = h[i];
      bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!alnum && c != '-' && c != '.' && c != '_')
        return memchr(h, ':', hl) ? "bad host (write an IPv6 address in brackets: [::1]:PORT)"
                                  : "bad host (an IP address, a name or *)";
      if (!(c >= '0' && c <= '9') && c != '.')
        digits_dots = false;
    }
    if (digits_dots) {
      char buf[32];
      unsigned char addr[4];
      if (hl >= sizeof buf)
        return "bad IPv4 address";
      memcpy(buf, h, hl);
      buf[hl] = '\0';
      if (inet_pton(AF_INET, buf, addr) != 1)
        return "bad IPv4 address";
    }
  }
  const char *p = colon + 1;
  if (*p == '*')
    return "a fixed port is required";
  unsigned v = 0;
  if (!*p)
    return "a port is required";
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return "bad port (a number from 1 to 65535)";
    v = v * 10 + (unsigned)(*p - '0');
    if (v > 65535)
      return "bad port (a number from 1 to 65535)";
  }
  if (v == 0)
    return "bad port (a number from 1 to 65535)";
  *host = h;
  *hlen = hl;
  *port = v;
  return NULL;
}

#define IPC_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 on Linux */

const char *zql_zqld_parse_endpoint(const char *s)
{
  const char *host;
  size_t hl;
  unsigned port;
  if (strncmp(s, "tcp://", 6) == 0)
    return parse_hostport(s + 6, &host, &hl, &port);
  if (strncmp(s, "ipc://", 6) == 0) {
    if (!s[6])
      return "ipc:// needs a path";
    if (strlen(s + 6) > IPC_MAX)
      return "ipc:// path longer than 107 bytes";
    return NULL;
  }
  if (strncmp(s, "inproc://", 9) == 0)
    return "inproc:// endpoints cannot be reached by other processes";
  return "expected tcp://HOST:PORT or ipc://PATH";
}

const char *zql_zqld_parse_address(const char *s)
{
  const char *host;
  size_t hl;
  unsigned port;
  if (strstr(s, "://"))
    return "expected HOST:PORT without a scheme";
  return parse_hostport(s, &host, &hl, &port);
}

void zql_zqld_format_size(uint64_t v, char *out, size_t cap)
{
  static const struct {
    const char *unit;
    uint64_t mul;
  } units[] = {{"TiB", 1024 * GIB}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}};
  for (size_t i = 0; v && i < ZQL_ARRAY_LEN(units); i++)
    if (v % units[i].mul == 0) {
      snprintf(out, cap, "%" PRIu64 "%s", v / units[i].mul, units[i].unit);
      return;
    }
  snprintf(out, cap, "%" PRIu64, v);
}

void zql_zqld_format_duration(int64_t ms, char *out, size_t cap)
{
  static const struct {
    const char *unit;
    int64_t ms;
  } units[] = {{"d", MS_DAY}, {"h", MS_HOUR}, {"m", MS_MIN}, {"s", MS_SEC}, {"ms", 1}};
  if (ms <= 0 || cap == 0) {
    snprintf(out, cap, "%" PRId64, ms < 0 ? ms : (int64_t)0);
    return;
  }
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < ZQL_ARRAY_LEN(units) && ms; i++) {
    int64_t q = ms / units[i].ms;
    if (!q)
      continue;
    int w = snprintf(out + len, cap - len, "%" PRId64 "%s", q, units[i].unit);
    if (w < 0 || (size_t)w >= cap - len)
      return;
    len += (size_t)w;
    ms -= q * units[i].ms;
  }
}

/* ==== init / free / set ============================================================== */

/* A parsed value before it is stored. */
typedef struct val {
  int64_t i;  /* int, duration, enum, level */
  uint64_t u; /* size */
} val_t;

/* Parse `value` as key k's type and check its range. NULL or a reason; *range set when
 * the value parsed but lies outside the range (the reason then is static text too). */
static const char *parse_value(zql_zqld_key_t k, const char *value, val_t *v, bool *range)
{
  const zql_zqld_keyinfo_t *in = &rows[k].info;
  *range = false;
  if (!*value) {
    if (!in->allow_empty)
      return "a value is required";
    v->i = 0;
    v->u = 0;
    return NULL;
  }
  const char *why = NULL;
  switch (in->type) {
  case ZQL_ZQLD_T_ENDPOINT: return zql_zqld_parse_endpoint(value);
  case ZQL_ZQLD_T_ADDRESS: return zql_zqld_parse_address(value);
  case ZQL_ZQLD_T_PATH: return NULL;
  case ZQL_ZQLD_T_INT: why = zql_zqld_parse_int(value, &v->i); break;
  case ZQL_ZQLD_T_DURATION: why = zql_zqld_parse_duration(value, &v->i); break;
  case ZQL_ZQLD_T_SIZE:
    why = zql_zqld_parse_size(value, &v->u);
    if (!why && (v->u < in->umin || v->u > in->umax))
      *range = true;
    return why;
  case ZQL_ZQLD_T_LEVEL:
    v->i = zql_log_level_parse(value);
    return v->i < 0 ? "expected error, warn, info or debug" : NULL;
  case ZQL_ZQLD_T_ENUM:
    for (int i = 0; in->names[i]; i++)
      if (strcmp(value, in->names[i]) == 0) {
        v->i = i;
        return NULL;
      }
    return "not one of the names";
  }
  if (!why && (v->i < in->min || v->i > in->max))
    *range = true;
  return why;
}

/* The range of key k as text ("between 1KiB and 16MiB"). */
static void range_text(zql_zqld_key_t k, char *out, size_t cap)
{
  const zql_zqld_keyinfo_t *in = &rows[k].info;
  char lo[32], hi[32];
  switch (in->type) {
  case ZQL_ZQLD_T_SIZE:
    zql_zqld_format_size(in->umin, lo, sizeof lo);
    zql_zqld_format_size(in->umax, hi, sizeof hi);
    break;
  case ZQL_ZQLD_T_DURATION:
    zql_zqld_format_duration(in->min, lo, sizeof lo);
    zql_zqld_format_duration(in->max, hi, sizeof hi);
    break;
  default:
    snprintf(lo, sizeof lo, "%" PRId64, in->min);
    snprintf(hi, sizeof hi, "%" PRId64, in->max);
    break;
  }
  if (in->type == ZQL_ZQLD_T_SIZE && in->umax == UINT64_MAX)
    snprintf(out, cap, "at least %s", lo);
  else
    snprintf(out, cap, "between %s and %s", lo, hi);
}

static void free_string(zql_zqld_config_t *cfg, zql_zqld_key_t k)
{
  if (cfg->origin[k].owned)
    zql_free((char *)*FIELD(cfg, k, cstr_t));
  *FIELD(cfg, k, cstr_t) = "";
  cfg->origin[k].owned = false;
}

/* Store a parsed value (strings: a copy of `value`, or the static default text). */
static int store(zql_zqld_config_t *cfg, zql_zqld_key_t k, const char *value, const val_t *v,
                 bool copy)
{
  const zql_zqld_keyinfo_t *in = &rows[k].info;
  switch (in->type) {
  case ZQL_ZQLD_T_ENDPOINT:
  case ZQL_ZQLD_T_ADDRESS:
  case ZQL_ZQLD_T_PATH: {
    const char *s = value;
    if (copy && *value) {
      char *d = zql_strndup(value, strlen(value));
      if (!d)
        return ZQL_E_NOMEM;
      s = d;
    }
    free_string(cfg, k);
    *FIELD(cfg, k, cstr_t) = *s ? s : "";
    cfg->origin[k].owned = copy && *value;
    return 0;
  }
  case ZQL_ZQLD_T_INT:
  case ZQL_ZQLD_T_DURATION: *FIELD(cfg, k, int64_t) = v->i; return 0;
  case ZQL_ZQLD_T_SIZE: *FIELD(cfg, k, uint64_t) = v->u; return 0;
  case ZQL_ZQLD_T_ENUM:
  case ZQL_ZQLD_T_LEVEL: *FIELD(cfg, k, int) = (int)v->i; return 0;
  }
  return 0;
}

void zql_zqld_config_init(zql_zqld_config_t *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->file = no_file;
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    val_t v = {0, 0};
    bool range;
    if (parse_value((zql_zqld_key_t)k, rows[k].info.def, &v, &range) || range)
      ZQL_BUG("bad default of %s.%s", rows[k].info.section, rows[k].info.key);
    if (is_string_type(rows[k].info.type))
      *FIELD(cfg, k, cstr_t) = "";
    store(cfg, (zql_zqld_key_t)k, rows[k].info.def, &v, false);
    cfg->origin[k].src = ZQL_ZQLD_SRC_DEFAULT;
    cfg->origin[k].line = 0;
  }
}

void zql_zqld_config_free(zql_zqld_config_t *cfg)
{
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++)
    if (is_string_type(rows[k].info.type))
      free_string(cfg, (zql_zqld_key_t)k);
  if (cfg->file && cfg->file != no_file)
    zql_free((char *)cfg->file);
  memset(cfg, 0, sizeof *cfg);
}

/* Set key k from src. `where` prefixes errors. */
static void set_key(ctx_t *c, zql_zqld_config_t *cfg, zql_zqld_key_t k, const char *value,
                    zql_zqld_src_t src, int line, const char *where)
{
  const zql_zqld_keyinfo_t *in = &rows[k].info;
  val_t v = {0, 0};
  bool range;
  const char *why = parse_value(k, value, &v, &range);
  if (why) {
    if (!*value) {
      err_add(c, "%s%s.%s: %s", where, in->section, in->key, why);
    } else if (in->type == ZQL_ZQLD_T_ENUM) {
      zql_strbuf_t names = ZQL_STRBUF_INIT;
      for (int i = 0; in->names[i]; i++)
        zql_strbuf_addf(&names, "%s%s",
                        i == 0             ? ""
                        : in->names[i + 1] ? ", "
                                           : " or ",
                        in->names[i]);
      err_add(c, "%s%s.%s: invalid value '%.200s': expected %s", where, in->section, in->key, value,
              names.oom ? "?" : names.buf);
      zql_strbuf_release(&names);
    } else {
      err_add(c, "%s%s.%s: invalid %s '%.200s': %s", where, in->section, in->key,
              zql_zqld_type_name(in->type), value, why);
    }
    return;
  }
  if (range) {
    char r[96];
    range_text(k, r, sizeof r);
    err_add(c, "%s%s.%s: %.200s is out of range: it must be %s", where, in->section, in->key, value,
            r);
    return;
  }
  if (src < cfg->origin[k].src)
    return; /* a higher-priority source already set it */
  if (store(cfg, k, value, &v, true) != 0) {
    nomem(c);
    return;
  }
  cfg->origin[k].src = src;
  cfg->origin[k].line = line;
}

static int distance_limit(const char *name)
{
  int limit = (int)strlen(name) / 3 + 1;
  return limit > 3 ? 3 : limit;
}

/* The key of section `sec` (NULL: any section) whose name is nearest to `key`, or -1. */
static int nearest_key(const char *key, const char *sec)
{
  int best = -1, limit = distance_limit(key);
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    if (sec && strcmp(rows[k].info.section, sec) != 0)
      continue;
    int d = zql_edit_distance(key, rows[k].info.key, limit);
    if (d <= limit) {
      best = k;
      if (d == 0)
        break;
      limit = d - 1;
    }
  }
  return best;
}

/* The known name nearest to `name` among `n` candidates (get(i)), or NULL. */
static const char *nearest(const char *name, int n, const char *(*get)(int i, char *buf, size_t),
                           char *buf, size_t cap)
{
  int best = -1, limit = distance_limit(name);
  char tmp[96];
  for (int i = 0; i < n; i++) {
    int d = zql_edit_distance(name, get(i, tmp, sizeof tmp), limit);
    if (d <= limit) {
      best = i;
      snprintf(buf, cap, "%s", tmp);
      if (d == 0)
        break;
      limit = d - 1;
    }
  }
  return best < 0 ? NULL : buf;
}

static const char *get_section(int i, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s", sections[i]);
  return buf;
}

static const char *get_dotted(int i, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s.%s", rows[i].info.section, rows[i].info.key);
  return buf;
}

static const char *get_env(int i, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s", rows[i].info.env);
  return buf;
}

/* ==== the INI reader ================================================================= */

typedef struct reader {
  ctx_t *c;
  zql_zqld_config_t *cfg;
  const char *name;
  int line;
  int section;              /* index into sections[], -1 none yet, -2 an unknown one */
  int seen[ZQL_ZQLD_NKEYS]; /* line where the key was set in this file, 0 not yet */
} reader_t;

static bool blank(char c)
{
  return c == ' ' || c == '\t';
}

/* The rest of a line after a value or "]": only blanks, then an optional comment. */
static bool rest_ok(const char *p, const char *end)
{
  while (p < end && blank(*p))
    p++;
  return p == end || *p == '#' || *p == ';';
}

static void ini_section(reader_t *r, const char *p, const char *end)
{
  const char *close = memchr(p, ']', (size_t)(end - p));
  if (!close || !rest_ok(close + 1, end)) {
    err_add(r->c, "%s:%d: a section header is '[name]'", r->name, r->line);
    r->section = -2;
    return;
  }
  p++;
  while (p < close && blank(*p))
    p++;
  const char *e = close;
  while (e > p && blank(e[-1]))
    e--;
  char name[64];
  size_t n = (size_t)(e - p);
  if (n >= sizeof name)
    n = sizeof name - 1;
  memcpy(name, p, n);
  name[n] = '\0';
  for (int i = 0; i < (int)ZQL_ARRAY_LEN(sections); i++)
    if (strcmp(name, sections[i]) == 0) {
      r->section = i;
      return;
    }
  r->section = -2;
  char hint[96];
  if (nearest(name, (int)ZQL_ARRAY_LEN(sections), get_section, hint, sizeof hint))
    err_add(r->c, "%s:%d: unknown section [%s]; did you mean [%s]?", r->name, r->line, name, hint);
  else
    err_add(r->c,
            "%s:%d: unknown section [%s] (sections: zqld, ingest, http, security, "
            "scheduler, log)",
            r->name, r->line, name);
}

/* Decode a double-quoted value starting at p (on the quote) into out; returns the
 * position after the closing quote, or NULL with *why set. */
static const char *unquote(const char *p, const char *end, zql_strbuf_t *out, const char **why)
{
  p++;
  while (p < end && *p != '"') {
    if (*p != '\\') {
      zql_strbuf_addc(out, *p++);
      continue;
    }
    if (++p == end)
      break;
    switch (*p) {
    case '"': zql_strbuf_addc(out, '"'); break;
    case '\\': zql_strbuf_addc(out, '\\'); break;
    case 'n': zql_strbuf_addc(out, '\n'); break;
    case 't': zql_strbuf_addc(out, '\t'); break;
    case 'r': zql_strbuf_addc(out, '\r'); break;
    case 'x': {
      int v = 0;
      for (int i = 1; i <= 2; i++) {
        char h = p + i < end ? p[i] : '\0';
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0) {
          *why = "\\x needs two hex digits";
          return NULL;
        }
        v = v * 16 + d;
      }
      if (v == 0) {
        *why = "a value cannot contain a NUL byte";
        return NULL;
      }
      zql_strbuf_addc(out, (char)v);
      p += 2;
      break;
    }
    default: *why = "unknown escape (use \\\" \\\\ \\n \\t \\r or \\xHH)"; return NULL;
    }
    p++;
  }
  if (p == end) {
    *why = "unterminated quoted value";
    return NULL;
  }
  return p + 1;
}

static bool key_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

static void ini_assignment(reader_t *r, const char *p, const char *end)
{
  const char *kb = p;
  while (p < end && key_char(*p))
    p++;
  const char *ke = p;
  while (p < end && blank(*p))
    p++;
  if (ke == kb || p == end || *p != '=') {
    err_add(r->c, "%s:%d: expected 'key = value', '[section]' or a comment", r->name, r->line);
    return;
  }
  char key[64];
  size_t kn = (size_t)(ke - kb);
  if (kn >= sizeof key)
    kn = sizeof key - 1;
  memcpy(key, kb, kn);
  key[kn] = '\0';

  /* the value */
  p++;
  while (p < end && blank(*p))
    p++;
  zql_strbuf_t val = ZQL_STRBUF_INIT;
  if (p < end && *p == '"') {
    const char *why = NULL;
    const char *after = unquote(p, end, &val, &why);
    if (!after || !rest_ok(after, end)) {
      err_add(r->c, "%s:%d: %s", r->name, r->line, after ? "text after the closing quote" : why);
      zql_strbuf_release(&val);
      return;
    }
  } else {
    const char *e = p;
    while (e < end && !((*e == '#' || *e == ';') && blank(e[-1])))
      e++;
    while (e > p && blank(e[-1]))
      e--;
    zql_strbuf_add(&val, p, (size_t)(e - p));
  }
  if (val.oom) {
    nomem(r->c);
    zql_strbuf_release(&val);
    return;
  }

  if (r->section == -1) {
    err_add(r->c, "%s:%d: key '%s' is outside any [section]", r->name, r->line, key);
  } else if (r->section >= 0) {
    const char *sec = sections[r->section];
    int k = zql_zqld_config_find(sec, key);
    if (k < 0) {
      int near = nearest_key(key, sec);
      if (near < 0)
        near = nearest_key(key, NULL);
      if (near >= 0 && strcmp(rows[near].info.section, sec) == 0)
        err_add(r->c, "%s:%d: unknown key '%s' in [%s]; did you mean '%s'?", r->name, r->line, key,
                sec, rows[near].info.key);
      else if (near >= 0)
        err_add(r->c, "%s:%d: unknown key '%s' in [%s]; did you mean '%s' in [%s]?", r->name,
                r->line, key, sec, rows[near].info.key, rows[near].info.section);
      else
        err_add(r->c, "%s:%d: unknown key '%s' in [%s]", r->name, r->line, key, sec);
    } else if (r->seen[k]) {
      err_add(r->c, "%s:%d: duplicate key '%s' in [%s] (first set on line %d)", r->name, r->line,
              key, sec, r->seen[k]);
    } else {
      r->seen[k] = r->line;
      char where[300];
      snprintf(where, sizeof where, "%s:%d: ", r->name, r->line);
      set_key(r->c, r->cfg, (zql_zqld_key_t)k, val.buf, ZQL_ZQLD_SRC_FILE, r->line, where);
    }
  }
  zql_strbuf_release(&val);
}

static void ini_line(reader_t *r, const char *p, size_t n)
{
  if (n > 0 && p[n - 1] == '\r')
    n--;
  const char *end = p + n;
  if (memchr(p, '\0', n)) {
    err_add(r->c, "%s:%d: NUL byte in the line (not a text file?)", r->name, r->line);
    return;
  }
  while (p < end && blank(*p))
    p++;
  if (p == end || *p == '#' || *p == ';')
    return;
  if (*p == '[')
    ini_section(r, p, end);
  else
    ini_assignment(r, p, end);
}

/* Remember the name of the file being read (error locations of validate()). */
static int set_file(zql_zqld_config_t *cfg, const char *name)
{
  if (cfg->file != no_file && strcmp(cfg->file, name) == 0)
    return 0;
  char *copy = zql_strndup(name, strlen(name));
  if (!copy)
    return ZQL_E_NOMEM;
  if (cfg->file != no_file)
    zql_free((char *)cfg->file);
  cfg->file = copy;
  return 0;
}

int zql_zqld_config_load_text(zql_zqld_config_t *cfg, const char *name, const char *text,
                              size_t len, zql_zqld_errs_t *errs)
{
  ctx_t c = {errs, 0};
  if (set_file(cfg, name) != 0) {
    nomem(&c);
    return c.rc;
  }
  reader_t *r = zql_calloc(1, sizeof *r);
  if (!r) {
    nomem(&c);
    return c.rc;
  }
  r->c = &c;
  r->cfg = cfg;
  r->name = name;
  r->section = -1;
  const char *p = text, *end = text + len;
  if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte order mark */
    p += 3;
  while (p < end && c.rc != ZQL_E_NOMEM) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    r->line++;
    ini_line(r, p, (size_t)(le - p));
    p = nl ? nl + 1 : end;
  }
  zql_free(r);
  return c.rc;
}

int zql_zqld_config_load_file(zql_zqld_config_t *cfg, const char *path, zql_zqld_errs_t *errs)
{
  ctx_t c = {errs, 0};
  FILE *f = fopen(path, "rb");
  if (!f) {
    err_add(&c, "%s: cannot open: %s", path, strerror(errno));
    return c.rc == ZQL_E_NOMEM ? c.rc : ZQL_E_IO;
  }
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    zql_strbuf_add(&sb, buf, n);
  bool bad = ferror(f) != 0;
  int saved = errno;
  fclose(f);
  if (bad) {
    zql_strbuf_release(&sb);
    err_add(&c, "%s: cannot read: %s", path, strerror(saved));
    return c.rc == ZQL_E_NOMEM ? c.rc : ZQL_E_IO;
  }
  if (sb.oom) {
    zql_strbuf_release(&sb);
    nomem(&c);
    return c.rc;
  }
  int rc = zql_zqld_config_load_text(cfg, path, sb.buf, sb.len, errs);
  zql_strbuf_release(&sb);
  return rc;
}

/* ==== environment and flags ========================================================== */

int zql_zqld_config_env(zql_zqld_config_t *cfg, char *const *envp, zql_zqld_errs_t *errs)
{
  ctx_t c = {errs, 0};
  for (; envp && *envp; envp++) {
    const char *e = *envp;
    if (strncmp(e, "ZQLD_", 5) != 0)
      continue;
    const char *eq = strchr(e, '=');
    size_t nl = eq ? (size_t)(eq - e) : strlen(e);
    const char *value = eq ? eq + 1 : "";
    int k = -1;
    for (int i = 0; i < ZQL_ZQLD_NKEYS && k < 0; i++)
      if (strlen(rows[i].info.env) == nl && strncmp(e, rows[i].info.env, nl) == 0)
        k = i;
    if (k < 0) {
      char name[128], hint[96];
      snprintf(name, sizeof name, "%.*s", (int)(nl < 127 ? nl : 127), e);
      if (nearest(name, ZQL_ZQLD_NKEYS, get_env, hint, sizeof hint))
        err_add(&c, "environment %s: unknown ZQLD_ variable; did you mean %s?", name, hint);
      else
        err_add(&c,
                "environment %s: unknown ZQLD_ variable (they are ZQLD_<SECTION>_<KEY>, "
                "such as ZQLD_INGEST_BSON)",
                name);
      continue;
    }
    char where[128];
    where_text(where, sizeof where, "", (zql_zqld_key_t)k, ZQL_ZQLD_SRC_ENV, 0);
    set_key(&c, cfg, (zql_zqld_key_t)k, value, ZQL_ZQLD_SRC_ENV, 0, where);
  }
  return c.rc;
}

int zql_zqld_config_set_flag(zql_zqld_config_t *cfg, const char *name, const char *value,
                             zql_zqld_errs_t *errs)
{
  ctx_t c = {errs, 0};
  int k = zql_zqld_config_find_dotted(name);
  if (k < 0) {
    char hint[96];
    if (nearest(name, ZQL_ZQLD_NKEYS, get_dotted, hint, sizeof hint))
      err_add(&c, "command line: unknown key '%.100s'; did you mean '%s'?", name, hint);
    else
      err_add(&c,
              "command line: unknown key '%.100s' (keys are section.key, such as "
              "ingest.bson)",
              name);
    return c.rc;
  }
  char where[128];
  where_text(where, sizeof where, "", (zql_zqld_key_t)k, ZQL_ZQLD_SRC_FLAG, 0);
  set_key(&c, cfg, (zql_zqld_key_t)k, value, ZQL_ZQLD_SRC_FLAG, 0, where);
  return c.rc;
}

int zql_zqld_config_set(zql_zqld_config_t *cfg, const char *assignment, zql_zqld_errs_t *errs)
{
  ctx_t c = {errs, 0};
  const char *eq = strchr(assignment, '=');
  if (!eq) {
    err_add(&c, "command line: --set %.100s: expected section.key=value", assignment);
    return c.rc;
  }
  const char *b = assignment, *e = eq;
  while (b < e && blank(*b))
    b++;
  while (e > b && blank(e[-1]))
    e--;
  char *name = zql_strndup(b, (size_t)(e - b));
  if (!name) {
    nomem(&c);
    return c.rc;
  }
  int rc = zql_zqld_config_set_flag(cfg, name, eq + 1, errs);
  zql_free(name);
  return rc;
}

/* ==== validation ===================================================================== */

/* An error about key k, placed at the origin of its value. */
static void key_err(ctx_t *c, const zql_zqld_config_t *cfg, zql_zqld_key_t k, const char *fmt, ...)
    ZQL_PRINTF(4, 5);
static void key_err(ctx_t *c, const zql_zqld_config_t *cfg, zql_zqld_key_t k, const char *fmt, ...)
{
  char where[300];
  where_text(where, sizeof where, cfg->file, k, cfg->origin[k].src, cfg->origin[k].line);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(&sb, fmt, ap);
  va_end(ap);
  if (sb.oom)
    nomem(c);
  else
    err_add(c, "%s%s.%s: %s", where, rows[k].info.section, rows[k].info.key, sb.buf);
  zql_strbuf_release(&sb);
}

/* Of two keys in conflict, the one to blame: the value from the higher-priority source
 * (it is the one that was changed), else the later in the file, else b. */
static zql_zqld_key_t blame(const zql_zqld_config_t *cfg, zql_zqld_key_t a, zql_zqld_key_t b)
{
  const zql_zqld_origin_t *oa = &cfg->origin[a], *ob = &cfg->origin[b];
  if (oa->src != ob->src)
    return oa->src > ob->src ? a : b;
  return oa->line > ob->line ? a : b;
}

typedef struct bind {
  zql_zqld_key_t k;
  bool tcp;
  const char *host; /* tcp: the host span; ipc: the path */
  size_t hlen;
  unsigned port;
} bind_t;

static bool wildcard(const char *h, size_t n)
{
  return (n == 1 && h[0] == '*') || (n == 7 && memcmp(h, "0.0.0.0", 7) == 0) ||
         (n == 4 && memcmp(h, "[::]", 4) == 0);
}

static void check_binds(ctx_t *c, const zql_zqld_config_t *cfg)
{
  static const zql_zqld_key_t keys[] = {ZQL_ZQLD_INGEST_BSON, ZQL_ZQLD_INGEST_JSON,
                                        ZQL_ZQLD_INGEST_ACKED, ZQL_ZQLD_INGEST_PUB,
                                        ZQL_ZQLD_HTTP_LISTEN};
  bind_t b[ZQL_ARRAY_LEN(keys)];
  size_t n = 0;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(keys); i++) {
    const char *s = *CFIELD(cfg, keys[i], cstr_t);
    if (!*s)
      continue;
    bind_t *x = &b[n];
    x->k = keys[i];
    if (keys[i] == ZQL_ZQLD_HTTP_LISTEN || strncmp(s, "tcp://", 6) == 0) {
      x->tcp = true;
      if (parse_hostport(keys[i] == ZQL_ZQLD_HTTP_LISTEN ? s : s + 6, &x->host, &x->hlen, &x->port))
        continue; /* invalid values never get stored; defensive */
    } else {
      x->tcp = false;
      x->host = s + 6;
      x->hlen = strlen(x->host);
      x->port = 0;
    }
    n++;
  }
  for (size_t j = 1; j < n; j++)
    for (size_t i = 0; i < j; i++) {
      const bind_t *x = &b[i], *y = &b[j];
      if (x->tcp != y->tcp || x->port != y->port)
        continue;
      bool same = x->hlen == y->hlen && memcmp(x->host, y->host, x->hlen) == 0;
      if (!same && !(x->tcp && (wildcard(x->host, x->hlen) || wildcard(y->host, y->hlen))))
        continue;
      zql_zqld_key_t bad = blame(cfg, x->k, y->k), other = bad == x->k ? y->k : x->k;
      key_err(c, cfg, bad, "%s is %s the address of %s.%s", *CFIELD(cfg, bad, cstr_t),
              same ? "also" : "in conflict with", rows[other].info.section, rows[other].info.key);
      break;
    }
}

/* A key file must be a readable regular file. */
static void check_readable(ctx_t *c, const zql_zqld_config_t *cfg, zql_zqld_key_t k)
{
  const char *path = *CFIELD(cfg, k, cstr_t);
  if (!*path)
    return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    key_err(c, cfg, k, "cannot read %s: %s", path, strerror(errno));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0)
    key_err(c, cfg, k, "cannot read %s: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    key_err(c, cfg, k, "%s is not a regular file", path);
  close(fd);
}

int zql_zqld_config_validate(zql_zqld_config_t *cfg, zql_zqld_errs_t *errs)
{
  ctx_t c = {errs, 0};
  struct stat st;

  if (!*cfg->data_dir)
    key_err(&c, cfg, ZQL_ZQLD_DATA, "the data directory must be set");
  else if (stat(cfg->data_dir, &st) == 0 && !S_ISDIR(st.st_mode))
    key_err(&c, cfg, ZQL_ZQLD_DATA, "%s is not a directory", cfg->data_dir);

  check_binds(&c, cfg);

  char a[32], b[32];
  if (cfg->retry_min_ms > cfg->retry_max_ms) {
    zql_zqld_format_duration(cfg->retry_min_ms, a, sizeof a);
    zql_zqld_format_duration(cfg->retry_max_ms, b, sizeof b);
    if (blame(cfg, ZQL_ZQLD_RETRY_MIN, ZQL_ZQLD_RETRY_MAX) == ZQL_ZQLD_RETRY_MIN)
      key_err(&c, cfg, ZQL_ZQLD_RETRY_MIN, "%s is larger than scheduler.retry_max (%s)", a, b);
    else
      key_err(&c, cfg, ZQL_ZQLD_RETRY_MAX, "%s is smaller than scheduler.retry_min (%s)", b, a);
  }
  if (cfg->max_event_bytes > cfg->queue_bytes) {
    zql_zqld_format_size(cfg->max_event_bytes, a, sizeof a);
    zql_zqld_format_size(cfg->queue_bytes, b, sizeof b);
    if (blame(cfg, ZQL_ZQLD_MAX_EVENT_BYTES, ZQL_ZQLD_QUEUE_BYTES) == ZQL_ZQLD_MAX_EVENT_BYTES)
      key_err(&c, cfg, ZQL_ZQLD_MAX_EVENT_BYTES,
              "%s is larger than ingest.queue_bytes (%s): the queue must hold one event", a, b);
    else
      key_err(&c, cfg, ZQL_ZQLD_QUEUE_BYTES,
              "%s is smaller than ingest.max_event_bytes (%s): the queue must hold one event", b,
              a);
  }

  check_readable(&c, cfg, ZQL_ZQLD_HTTP_TOKENS_FILE);
  check_readable(&c, cfg, ZQL_ZQLD_CURVE_SECRET_KEY_FILE);
  check_readable(&c, cfg, ZQL_ZQLD_CURVE_ALLOW_FILE);
  if (*cfg->curve_allow_file && !*cfg->curve_secret_key_file)
    key_err(&c, cfg, ZQL_ZQLD_CURVE_ALLOW_FILE,
            "a client allow-list needs security.curve_secret_key_file (the server's key)");

  if (*cfg->pid_file) {
    const char *slash = strrchr(cfg->pid_file, '/');
    if (slash && slash != cfg->pid_file) {
      char *dir = zql_strndup(cfg->pid_file, (size_t)(slash - cfg->pid_file));
      if (!dir)
        nomem(&c);
      else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        key_err(&c, cfg, ZQL_ZQLD_PID_FILE, "directory %s does not exist", dir);
      zql_free(dir);
    }
  }

  if (!*cfg->dead_letter && *cfg->data_dir) {
    size_t n = strlen(cfg->data_dir);
    while (n > 1 && cfg->data_dir[n - 1] == '/')
      n--;
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    zql_strbuf_add(&sb, cfg->data_dir, n);
    zql_strbuf_adds(&sb, n == 1 && cfg->data_dir[0] == '/' ? "deadletter" : "/deadletter");
    char *d = zql_strbuf_detach(&sb, NULL);
    if (!d) {
      nomem(&c);
    } else {
      free_string(cfg, ZQL_ZQLD_DEAD_LETTER);
      cfg->dead_letter = d;
      cfg->origin[ZQL_ZQLD_DEAD_LETTER].owned = true;
    }
  }
  return c.rc;
}

/* ==== printing ======================================================================= */

void zql_zqld_config_format(const zql_zqld_config_t *cfg, zql_zqld_key_t k, zql_strbuf_t *out)
{
  const zql_zqld_keyinfo_t *in = &rows[k].info;
  char buf[48];
  switch (in->type) {
  case ZQL_ZQLD_T_ENDPOINT:
  case ZQL_ZQLD_T_ADDRESS:
  case ZQL_ZQLD_T_PATH: zql_strbuf_adds(out, *CFIELD(cfg, k, cstr_t)); return;
  case ZQL_ZQLD_T_INT: zql_strbuf_addf(out, "%" PRId64, *CFIELD(cfg, k, int64_t)); return;
  case ZQL_ZQLD_T_DURATION: {
    int64_t v = *CFIELD(cfg, k, int64_t);
    if (v == 0 && in->allow_empty)
      return;
    zql_zqld_format_duration(v, buf, sizeof buf);
    zql_strbuf_adds(out, buf);
    return;
  }
  case ZQL_ZQLD_T_SIZE: {
    uint64_t v = *CFIELD(cfg, k, uint64_t);
    if (v == 0 && in->allow_empty)
      return;
    zql_zqld_format_size(v, buf, sizeof buf);
    zql_strbuf_adds(out, buf);
    return;
  }
  case ZQL_ZQLD_T_ENUM: {
    int v = *CFIELD(cfg, k, int);
    zql_strbuf_adds(out, in->names[v]);
    return;
  }
  case ZQL_ZQLD_T_LEVEL: zql_strbuf_adds(out, zql_log_level_name(*CFIELD(cfg, k, int))); return;
  }
}

/* Would the INI reader give back `s` unquoted? */
static bool plain(const char *s)
{
  size_t n = strlen(s);
  if (n && (blank(s[0]) || blank(s[n - 1]) || s[0] == '"' || s[0] == '#' || s[0] == ';'))
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 || ch == 0x7f || ((ch == '#' || ch == ';') && i && blank(s[i - 1])))
      return false;
  }
  return true;
}

void zql_zqld_config_print(const zql_zqld_config_t *cfg, FILE *f)
{
  zql_strbuf_t v = ZQL_STRBUF_INIT, q = ZQL_STRBUF_INIT;
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    zql_strbuf_reset(&v);
    zql_strbuf_reset(&q);
    zql_zqld_config_format(cfg, (zql_zqld_key_t)k, &v);
    const char *text = v.buf;
    if (!plain(v.buf)) {
      zql_strbuf_add_quoted(&q, v.buf, v.len);
      text = q.buf;
    }
    fprintf(f, "%s.%s = %s  # %s\n", rows[k].info.section, rows[k].info.key,
            v.oom || q.oom ? "?" : text, zql_zqld_src_name(cfg->origin[k].src));
  }
  zql_strbuf_release(&v);
  zql_strbuf_release(&q);
}
