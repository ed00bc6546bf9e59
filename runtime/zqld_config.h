/*
 * zqld_config.h -- zqld's configuration: an INI file, environment and flags (runtime
 * services). docs/zqld.md is the user's reference; contrib/zqld.conf the example.
 *
 * Every setting is one row of a typed key table (section, key, type, default, range,
 * help). A value has one of four sources, in increasing priority:
 *
 *   default < file (zqld --config FILE) < env (ZQLD_<SECTION>_<KEY>) < flag (--set s.k=v,
 *   and the shortcuts --data DIR, --log-level L, which the caller maps to zqld.data and
 *   zqld.log_level)
 *
 * A setter never replaces a value that came from a higher-priority source, so the calls
 * may come in any order (a --set parsed before --config still wins); within one source
 * the later call wins (a repeated --set), except that a key given twice in one file is an
 * error. Usage, also for a SIGHUP reload (into a fresh struct, swapped in when it is
 * valid; there are no globals here):
 *
 *   zql_zqld_config_t cfg;  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
 *   zql_zqld_config_init(&cfg);
 *   zql_zqld_config_load_file(&cfg, path, &errs);     (when --config was given)
 *   zql_zqld_config_env(&cfg, environ, &errs);
 *   zql_zqld_config_set(&cfg, "ingest.fsync=always", &errs);   (each --set)
 *   zql_zqld_config_validate(&cfg, &errs);
 *   if (errs.n) { zql_zqld_errs_print(&errs, stderr); exit 1 (or 78, EX_CONFIG) }
 *   ... zql_zqld_config_free(&cfg); zql_zqld_errs_release(&errs);
 *
 * Every function collects all its errors, not only the first. Each error is one line:
 *   FILE:LINE: message                       (from the file)
 *   environment ZQLD_INGEST_BSON: message    (from the environment)
 *   command line: ingest.bson: message       (from a flag)
 * validate() places a cross-key error at the origin of the offending value the same way.
 *
 * Return values: 0, ZQL_E_USAGE when at least one configuration error was recorded,
 * ZQL_E_IO when the file cannot be read (also recorded), ZQL_E_NOMEM when an allocation
 * failed (errs->oom is set; the config stays valid to free).
 *
 * Value syntax per type (docs/zqld.md):
 *   endpoint  a ZeroMQ bind address: tcp://HOST:PORT (HOST is *, an IPv4 address, [IPv6]
 *             or a name) or ipc:///path; empty disables the endpoint
 *   address   HOST:PORT for HTTP (HOST as above, * = every interface); empty disables
 *   path      a file or directory name
 *   int       a decimal integer
 *   size      an integer with an optional unit: B, K/KiB, M/MiB, G/GiB, T/TiB (powers of
 *             1024), KB/MB/GB/TB (powers of 1000); case-insensitive; "64MiB"
 *   duration  integer+unit parts, largest first: ms, s, m, h, d, w ("10ms", "1h30m"); "0"
 *   enum      one of the key's names (ingest.fsync: always|batch|none)
 *   level     error|warn|info|debug (runtime/log.h)
 * Values may be double-quoted in the file (escapes \" \\ \n \t \r \xHH), which keeps '#',
 * ';' and leading or trailing blanks.
 */
#ifndef ZQL_ZQLD_CONFIG_H
#define ZQL_ZQLD_CONFIG_H

#include "runtime/base/zql_common.h"

/* ==== error list ==== */

typedef struct zql_zqld_errs {
  char **items; /* heap strings, one error each, without a trailing newline */
  size_t n, cap;
  bool oom; /* an error could not be recorded */
} zql_zqld_errs_t;

#define ZQL_ZQLD_ERRS_INIT {NULL, 0, 0, false}

void zql_zqld_errs_init(zql_zqld_errs_t *e);
void zql_zqld_errs_release(zql_zqld_errs_t *e); /* free, back to INIT */
/* One line per error ("zqld: out of memory" as the last line when oom). */
void zql_zqld_errs_print(const zql_zqld_errs_t *e, FILE *f);

/* ==== the key table ==== */

typedef enum zql_zqld_key {
  /* [zqld] */
  ZQL_ZQLD_DATA,
  ZQL_ZQLD_LOG_LEVEL,
  ZQL_ZQLD_PID_FILE,
  /* [ingest] */
  ZQL_ZQLD_INGEST_BSON,
  ZQL_ZQLD_INGEST_JSON,
  ZQL_ZQLD_INGEST_ACKED,
  ZQL_ZQLD_INGEST_PUB,
  ZQL_ZQLD_FSYNC,
  ZQL_ZQLD_FSYNC_INTERVAL,
  ZQL_ZQLD_QUEUE_EVENTS,
  ZQL_ZQLD_QUEUE_BYTES,
  ZQL_ZQLD_MAX_EVENT_BYTES,
  ZQL_ZQLD_HWM,
  ZQL_ZQLD_DEAD_LETTER,
  /* [http] */
  ZQL_ZQLD_HTTP_LISTEN,
  ZQL_ZQLD_HTTP_TOKENS_FILE,
  ZQL_ZQLD_HTTP_MAX_BODY,
  /* [security] */
  ZQL_ZQLD_CURVE_SECRET_KEY_FILE,
  ZQL_ZQLD_CURVE_ALLOW_FILE,
  /* [scheduler] */
  ZQL_ZQLD_MAX_PARALLEL,
  ZQL_ZQLD_RETRY_MIN,
  ZQL_ZQLD_RETRY_MAX,
  ZQL_ZQLD_SETTLE,
  ZQL_ZQLD_THREADS_PER_RUN,
  /* [log] */
  ZQL_ZQLD_RETAIN,
  ZQL_ZQLD_RETAIN_BYTES,
  ZQL_ZQLD_NKEYS
} zql_zqld_key_t;

typedef enum zql_zqld_type {
  ZQL_ZQLD_T_ENDPOINT,
  ZQL_ZQLD_T_ADDRESS,
  ZQL_ZQLD_T_PATH,
  ZQL_ZQLD_T_INT,
  ZQL_ZQLD_T_SIZE,
  ZQL_ZQLD_T_DURATION,
  ZQL_ZQLD_T_ENUM,
  ZQL_ZQLD_T_LEVEL
} zql_zqld_type_t;

typedef struct zql_zqld_keyinfo {
  const char *section; /* "ingest" */
  const char *key;     /* "queue_bytes" */
  const char *env;     /* "ZQLD_INGEST_QUEUE_BYTES" */
  zql_zqld_type_t type;
  const char *def;          /* the default as text ("" = empty) */
  bool allow_empty;         /* an empty value is allowed (disables / none / keep) */
  int64_t min, max;         /* int, duration (ms): inclusive range of a non-empty value */
  uint64_t umin, umax;      /* size (bytes): the same */
  const char *const *names; /* enum: the names, NULL-terminated, in value order */
  const char *help;         /* one line for docs and --help */
} zql_zqld_keyinfo_t;

/* The table (ZQL_ZQLD_NKEYS rows, in zql_zqld_key_t order). */
const zql_zqld_keyinfo_t *zql_zqld_config_key(zql_zqld_key_t k);
/* A key by section and name ("ingest", "bson") or by "section.key"; -1 when unknown. */
int zql_zqld_config_find(const char *section, const char *key);
int zql_zqld_config_find_dotted(const char *name);
/* "endpoint", "address", "path", "int", "size", "duration", "enum", "level". */
const char *zql_zqld_type_name(zql_zqld_type_t t);

/* ==== the configuration ==== */

typedef enum zql_zqld_src {
  ZQL_ZQLD_SRC_DEFAULT,
  ZQL_ZQLD_SRC_FILE,
  ZQL_ZQLD_SRC_ENV,
  ZQL_ZQLD_SRC_FLAG
} zql_zqld_src_t;

/* "default", "file", "env", "flag". */
const char *zql_zqld_src_name(zql_zqld_src_t s);

typedef struct zql_zqld_origin {
  zql_zqld_src_t src;
  int line;   /* SRC_FILE: the line in cfg->file */
  bool owned; /* private: the string value is heap-owned */
} zql_zqld_origin_t;

/* Strings are never NULL; "" means empty (disabled / none). Durations are milliseconds;
 * an optional size or duration (log.retain*) is 0 when empty. */
typedef struct zql_zqld_config {
  /* [zqld] */
  const char *data_dir;
  int log_level; /* ZQL_LOG_* (runtime/log.h) */
  const char *pid_file;
  /* [ingest] */
  const char *ingest_bson;
  const char *ingest_json;
  const char *ingest_acked;
  const char *ingest_pub;
  int fsync; /* a zql_evlog_sync_t (runtime/evlog.h) */
  int64_t fsync_interval_ms;
  int64_t queue_events;
  uint64_t queue_bytes;
  uint64_t max_event_bytes;
  int64_t hwm;
  const char *dead_letter; /* "" until validate() resolves it to DATA/deadletter */
  /* [http] */
  const char *http_listen;
  const char *http_tokens_file;
  uint64_t http_max_body;
  /* [security] */
  const char *curve_secret_key_file;
  const char *curve_allow_file;
  /* [scheduler] */
  int64_t max_parallel;
  int64_t retry_min_ms;
  int64_t retry_max_ms;
  int64_t settle_ms;
  int64_t threads_per_run;
  /* [log] */
  int64_t retain_ms;     /* 0: keep */
  uint64_t retain_bytes; /* 0: keep */

  /* where each value came from */
  const char *file; /* the name of the file (or text) loaded last ("" when none) */
  zql_zqld_origin_t origin[ZQL_ZQLD_NKEYS];
} zql_zqld_config_t;

/* Every key at its default. Allocates nothing. */
void zql_zqld_config_init(zql_zqld_config_t *cfg);
void zql_zqld_config_free(zql_zqld_config_t *cfg); /* back to an uninitialized state */

/* Read an INI file: [section] lines, key = value lines, blank lines, comments starting
 * with '#' or ';' at the start of a line or after whitespace. Unknown sections and keys
 * (with a "did you mean" hint), duplicate keys, malformed lines and bad values are errors. */
int zql_zqld_config_load_file(zql_zqld_config_t *cfg, const char *path, zql_zqld_errs_t *errs);
/* The same from a string (tests, and zqld's built-in defaults); `name` names it in errors. */
int zql_zqld_config_load_text(zql_zqld_config_t *cfg, const char *name, const char *text,
                              size_t len, zql_zqld_errs_t *errs);

/* Apply every ZQLD_<SECTION>_<KEY>=value of envp (a NULL-terminated "NAME=value" array,
 * such as environ). Any other variable starting with ZQLD_ is an error. */
int zql_zqld_config_env(zql_zqld_config_t *cfg, char *const *envp, zql_zqld_errs_t *errs);

/* A flag: "section.key=value" (the value may be empty). */
int zql_zqld_config_set(zql_zqld_config_t *cfg, const char *assignment, zql_zqld_errs_t *errs);
/* The same with the name ("section.key") and value apart (--data DIR, --log-level L). */
int zql_zqld_config_set_flag(zql_zqld_config_t *cfg, const char *name, const char *value,
                             zql_zqld_errs_t *errs);

/* Cross-key checks, after every source was applied: data is set (and a directory when it
 * exists), no two endpoints share an address, retry_min <= retry_max, max_event_bytes <=
 * queue_bytes, key and token files are readable regular files, curve_allow_file needs
 * curve_secret_key_file, pid_file's directory exists. Resolves an empty dead_letter to
 * DATA/deadletter. */
int zql_zqld_config_validate(zql_zqld_config_t *cfg, zql_zqld_errs_t *errs);

/* The effective configuration for --check-config: one line per key in table order,
 *   section.key = value  # file|env|flag|default
 * with values in canonical form (sizes "64MiB", durations "1h30m") and double-quoted when
 * they would not read back as written (the escapes of a quoted value in the file). */
void zql_zqld_config_print(const zql_zqld_config_t *cfg, FILE *f);

/* A key's value in canonical form (as print() shows it), appended to out (a strbuf). */
struct zql_strbuf;
void zql_zqld_config_format(const zql_zqld_config_t *cfg, zql_zqld_key_t k, struct zql_strbuf *out);

/* ==== value parsers (NULL on success, else a static reason) ==== */

const char *zql_zqld_parse_int(const char *s, int64_t *out);
const char *zql_zqld_parse_size(const char *s, uint64_t *out);
const char *zql_zqld_parse_duration(const char *s, int64_t *ms);
const char *zql_zqld_parse_endpoint(const char *s);
const char *zql_zqld_parse_address(const char *s);

/* Canonical text of a size ("64MiB", "1500") and a duration ("1h30m", "0"); out holds at
 * least 32 bytes. parse(format(x)) == x. */
void zql_zqld_format_size(uint64_t bytes, char *out, size_t cap);
void zql_zqld_format_duration(int64_t ms, char *out, size_t cap);

#endif
