/*
 * tz.h -- time zones, the civil calendar, time buckets, ISO-8601 and strftime (layer 0).
 *
 * zql never uses the process-global TZ, localtime_r or mktime: zones are read from the
 * system's TZif files (RFC 8536) by our own reader, and every conversion goes through a
 * zql_tz_t. Instants are int64 milliseconds since 1970-01-01T00:00:00Z (a BSON date),
 * without leap seconds (POSIX time). Every function is valid over the whole int64 ms
 * range (years -292275055..292278994) unless it says it can fail.
 *
 * Zones. zql_tz_load("America/New_York") reads <zql_tzdb_dir()>/America/New_York once
 * and caches it for the whole process (a mutex guards the cache). A zone is immutable
 * after loading, so any number of threads may use it at once, and it stays valid until
 * zql_tz_cache_clear(). "UTC" is built in and works without tzdata files.
 *
 * Calendar. Proleptic Gregorian with astronomical year numbering (year 0 = 1 BC).
 * zql_days_from_civil / zql_civil_from_days are Howard Hinnant's algorithms ("chrono-
 * Compatible Low-Level Date Algorithms", http://howardhinnant.github.io/date_algorithms.html).
 *
 * Local time. zql_tz_to_civil maps an instant to the wall clock of a zone. The inverse,
 * zql_tz_from_civil, must decide what a wall-clock time means when it does not exist (a
 * gap: the clocks jump forward) or exists twice (a fold: the clocks go back). A fold
 * always resolves to the earlier instant; a gap per zql_tz_gap_t.
 *
 * Buckets (design/ZQL.md R10 and resolved point 11). A zql_bucket_t is set up once per
 * plan with zql_bucket_init (or zql_bucket_setup from the plan's strings) and then maps
 * instants to the start of their bucket:
 *   - ms, second, minute, hour: absolute intervals of N * unit counted from the origin;
 *     the default origin is 1970-01-01T00:00 local time in the zone, as a UTC instant.
 *   - day, week, month, quarter, year: local civil periods (a DST day lasts 23 or 25
 *     hours). A period starts at local midnight of its first day, or, when that midnight
 *     does not exist, at the first instant after the gap. Formally the boundaries are
 *     the instants S(D) = zql_tz_from_civil(D 00:00, ZQL_TZ_GAP_NEXT) of the periods'
 *     first days D, and t belongs to the last period with S(D) <= t; this partitions the
 *     time line even where a midnight repeats or a whole day is skipped (Pacific/Apia,
 *     2011-12-30). `every N` days counts from the origin's local date (default
 *     1970-01-01); weeks start on week_start and N-week periods are aligned to the week
 *     holding the origin's local date; N months/quarters/years are aligned to January of
 *     the origin's local year (default 1970).
 * Callers bucketing many instants can keep the last [start, end) of zql_bucket_range and
 * skip the computation while t stays inside it.
 *
 * ISO-8601. zql_parse_iso8601 is the one date parser of zql. It accepts
 *     YYYY-MM-DD
 *     YYYY-MM-DD(T|t| )HH:MM[:SS[(.|,)f...]][Z|z|+HH:MM|+HHMM|+HH|-...]
 * where YYYY may also be a sign and 6 to 9 digits (+002024, -000100: ISO 8601 expanded
 * years, as zql_date_to_text writes them). Fields are range checked (month 1..12, day
 * within the month of that year, hour 0..23, minute and second 0..59: no 24:00, no leap
 * second 60; offset hours 0..23 and minutes 0..59); fraction digits beyond milliseconds
 * are truncated. An offset requires a time of day. Without an offset, the default zone
 * interprets the local time: a date-time in a gap moves forward by the length of the gap
 * (02:30 on a spring-forward night in New York is 03:30 EDT, as Java and JavaScript's
 * Temporal do), a date-time in a fold takes the earlier instant, and a date alone means
 * the start of that local day (the first instant after a gap at midnight).
 *
 * strftime. zql_tz_format is our own formatter over the civil time of a zone (no libc
 * strftime, no locale; English names). Conversions:
 *   %Y year (at least 4 digits, '-' sign before year 0)  %C century  %y year % 100
 *   %m month 01-12   %d day 01-31   %e day, space padded   %j day of year 001-366
 *   %H hour 00-23    %I hour 01-12  %k hour, space padded  %l 12-hour, space padded
 *   %M minute        %S second      %L milliseconds 000-999
 *   %p AM/PM         %P am/pm       %a Mon  %A Monday      %b %h Jan  %B January
 *   %u ISO weekday 1 (Monday)-7     %w weekday 0 (Sunday)-6
 *   %G ISO week-based year          %g its last two digits %V ISO week 01-53
 *   %U week of year, weeks start Sunday 00-53   %W the same, weeks start Monday
 *   %Z zone abbreviation (EST)      %z offset +hhmm        %:z offset +hh:mm
 *   %s seconds since the epoch (floor)
 *   %F = %Y-%m-%d  %T = %H:%M:%S  %R = %H:%M  %D = %m/%d/%y
 *   %c = %a %b %e %H:%M:%S %Y  %x = %m/%d/%y  %X = %H:%M:%S
 *   %n newline  %t tab  %% a percent sign
 * Anything else after '%' (and a '%' at the end) is copied literally: "%q" stays "%q".
 */
#ifndef ZQL_TZ_H
#define ZQL_TZ_H

#include "runtime/base/zql_common.h"

#include "runtime/base/strbuf.h"

#define ZQL_MS_PER_SECOND INT64_C(1000)
#define ZQL_MS_PER_MINUTE INT64_C(60000)
#define ZQL_MS_PER_HOUR INT64_C(3600000)
#define ZQL_MS_PER_DAY INT64_C(86400000)

/* {==== the proleptic Gregorian calendar ================================================= */

/* Days since 1970-01-01 of year-month-day (month 1..12, day 1..31; a day past the end of
 * the month counts on into the next). Valid for |year| < 2^40. */
int64_t zql_days_from_civil(int64_t year, int month, int day);
/* The date of a day number (any int64 day / 86400000 range). */
void zql_civil_from_days(int64_t days, int64_t *year, int *month, int *day);
/* ISO weekday of a day number: 1 = Monday .. 7 = Sunday (1970-01-01 was a Thursday, 4). */
int zql_weekday_from_days(int64_t days);
bool zql_is_leap_year(int64_t year);
int zql_days_in_month(int64_t year, int month); /* month 1..12 */
/* Floor division and modulo (the result of the modulo has the sign of d > 0). */
int64_t zql_floor_div(int64_t a, int64_t d);
int64_t zql_floor_mod(int64_t a, int64_t d);

/* }==== */

/* {==== zones ============================================================================ */

typedef struct zql_tz zql_tz_t;

/* Wall-clock time. zql_tz_to_civil fills every field; zql_tz_from_civil reads year..ms. */
typedef struct zql_civil {
  int32_t year;     /* astronomical: 0 = 1 BC */
  int month;        /* 1..12 */
  int day;          /* 1..31 */
  int hour;         /* 0..23 */
  int minute;       /* 0..59 */
  int second;       /* 0..59 */
  int ms;           /* 0..999 */
  int wday;         /* ISO weekday 1 = Monday .. 7 = Sunday */
  int yday;         /* day of the year 1..366 */
  int32_t offset;   /* UTC offset in seconds, east positive (local = UTC + offset) */
  bool isdst;       /* daylight saving time in effect */
  const char *abbr; /* zone abbreviation ("EST", "+0545"); lives as long as the zone */
} zql_civil_t;

/* What zql_tz_from_civil does with a local time inside a gap. */
typedef enum zql_tz_gap {
  ZQL_TZ_GAP_SHIFT, /* move forward by the gap: interpret with the offset before it */
  ZQL_TZ_GAP_NEXT,  /* the first valid instant after the gap (the transition) */
  ZQL_TZ_GAP_FAIL   /* fail */
} zql_tz_gap_t;

/* The zone `name` (an IANA name such as "Europe/London", or "UTC"), loaded on first use
 * and cached for the process. Returns 0 and sets *out, or:
 *   ZQL_E_UNKNOWN_TIMEZONE  the name is unsafe (empty, "..", a leading '/', characters
 *                           outside [A-Za-z0-9_+-/]), names no TZif file, or the zone
 *                           uses leap seconds ("right/...", not supported)
 *   ZQL_E_CORRUPT           the file is not valid TZif (RFC 8536)
 *   ZQL_E_IO                the file cannot be read
 *   ZQL_E_NOMEM             ("out of memory")
 * with a one-line message in err (when not NULL). Thread-safe. */
int zql_tz_load(const char *name, const zql_tz_t **out, zql_strbuf_t *err);
/* The built-in UTC zone (never fails, needs no file). */
const zql_tz_t *zql_tz_utc(void);
/* Free every cached zone. Only when no zone is in use any more (at exit, in tests). */
void zql_tz_cache_clear(void);
/* The name the zone was loaded under ("UTC" for zql_tz_utc()). */
const char *zql_tz_name(const zql_tz_t *z);

/* A zone from TZif bytes (versions 1 to 4) without the cache: for tests and tools. The
 * caller frees it with zql_tz_free. Errors as zql_tz_load (ZQL_E_CORRUPT, ...). */
int zql_tz_from_tzif(const char *name, const void *data, size_t n, zql_tz_t **out,
                     zql_strbuf_t *err);
/* A zone from a POSIX TZ rule alone ("EST5EDT,M3.2.0,M11.1.0", "<+0545>-5:45"), with the
 * RFC 8536 extensions (hours -167..167 in rule times). ZQL_E_CORRUPT when malformed. */
int zql_tz_from_posix(const char *rule, zql_tz_t **out, zql_strbuf_t *err);
void zql_tz_free(zql_tz_t *z); /* NULL is a no-op; never for cached zones */

/* The UTC offset (seconds, east positive) in effect at instant t. */
int32_t zql_tz_offset_at(const zql_tz_t *z, int64_t utc_ms);
/* The wall-clock time of instant t in zone z. */
void zql_tz_to_civil(const zql_tz_t *z, int64_t utc_ms, zql_civil_t *out);
/* The instant at which the wall clock of z shows local->year..ms. month must be 1..12;
 * day, hour, minute, second and ms may lie outside their ranges and carry over (day 0 is
 * the last day of the previous month, hour 24 the next midnight). A fold gives the earlier
 * instant, a gap follows `gap`. Returns false when month is out of range, the time is in
 * a gap with ZQL_TZ_GAP_FAIL, or the local time lies outside the int64 ms range or within
 * 54 hours of its ends (where the offsets around it could not be examined). */
bool zql_tz_from_civil(const zql_tz_t *z, const zql_civil_t *local, zql_tz_gap_t gap,
                       int64_t *utc_ms);
/* The first instant after t at which the offset, DST flag or abbreviation changes; false
 * when there is none (a fixed zone, or none within the int64 ms range). */
bool zql_tz_next_transition(const zql_tz_t *z, int64_t utc_ms, int64_t *next_ms);

/* }==== */

/* {==== buckets ========================================================================== */

/* ORDER: zql_tunit_parse's name table. */
typedef enum zql_tunit {
  ZQL_TU_MS,
  ZQL_TU_SECOND,
  ZQL_TU_MINUTE,
  ZQL_TU_HOUR,
  ZQL_TU_DAY,
  ZQL_TU_WEEK,
  ZQL_TU_MONTH,
  ZQL_TU_QUARTER,
  ZQL_TU_YEAR
} zql_tunit_t;

/* "ms", "second", ... "year" (exactly, lower case) -> *out; false for anything else. */
bool zql_tunit_parse(const char *s, size_t n, zql_tunit_t *out);
const char *zql_tunit_name(zql_tunit_t u);
/* "monday" .. "sunday" (exactly, lower case) -> 1..7; 0 for anything else. */
int zql_weekday_parse(const char *s, size_t n);

typedef struct zql_bucket {
  zql_tunit_t unit;
  int64_t every;        /* N >= 1 */
  const zql_tz_t *tz;
  int week_start;       /* 1 = Monday .. 7 = Sunday */
  bool has_origin;
  int64_t origin_ms;    /* the origin instant when has_origin */
  /* private, derived by zql_bucket_init */
  int64_t width_ms;     /* sub-day units: N * unit */
  int64_t anchor;       /* sub-day: origin instant (UTC ms); day/week: first day number of
                           period 0; month units: month number (year * 12 + month - 1) of
                           period 0 */
  int64_t step;         /* day/week: days per period; month units: months per period */
} zql_bucket_t;

/* Set up b. every >= 1; week_start 1..7 (0 = Monday); origin_ms NULL for the default.
 * Returns 0, or ZQL_E_ARG_RANGE when every or week_start is out of range or N * unit
 * does not fit in int64 milliseconds. */
int zql_bucket_init(zql_bucket_t *b, zql_tunit_t unit, int64_t every, const zql_tz_t *tz,
                    int week_start, const int64_t *origin_ms);
/* zql_bucket_init from the plan's text (planner/plan.h zql_pbucket_t): unit "day", every,
 * tz NULL = "UTC" (loaded with zql_tz_load), week_start NULL or "monday".."sunday",
 * origin NULL or an ISO-8601 date-time (interpreted in tz when it has no offset).
 * Returns 0, or ZQL_E_UNKNOWN_UNIT, ZQL_E_UNKNOWN_TIMEZONE (and the other zql_tz_load
 * codes), ZQL_E_BAD_OPTION_VALUE (week_start), ZQL_E_BAD_DATE (origin), ZQL_E_ARG_RANGE,
 * with a message in err (when not NULL). */
int zql_bucket_setup(zql_bucket_t *b, const char *unit, int64_t every, const char *tz,
                     const char *week_start, const char *origin, zql_strbuf_t *err);
/* The start (UTC ms) of the bucket holding t. Returns 0, or ZQL_E_ARG_RANGE when the
 * start lies outside the int64 ms range (t within a bucket of the extremes). */
int zql_bucket_start(const zql_bucket_t *b, int64_t t_ms, int64_t *start);
/* The end of the bucket holding t: the start of the next bucket. 0 or ZQL_E_ARG_RANGE. */
int zql_bucket_end(const zql_bucket_t *b, int64_t t_ms, int64_t *end);
/* Both at once (cheaper than the two calls). 0 or ZQL_E_ARG_RANGE. */
int zql_bucket_range(const zql_bucket_t *b, int64_t t_ms, int64_t *start, int64_t *end);

/* }==== */

/* {==== ISO-8601 ========================================================================= */

/* A scanned ISO-8601 text before any zone is applied. */
typedef struct zql_iso {
  zql_civil_t local;   /* year..ms as written (zeros when there is no time) */
  bool has_time;
  bool has_offset;
  int32_t offset;      /* seconds east of UTC, when has_offset */
} zql_iso_t;

/* Syntax and range checks only (see the file comment). Returns 0 or ZQL_E_BAD_DATE; *why
 * (when not NULL) gets a static message on failure ("month out of range"). No allocation. */
int zql_iso8601_scan(const char *s, size_t n, zql_iso_t *out, const char **why);
/* The instant of a scanned text: its offset, else the local time in deflt. Returns 0, or
 * ZQL_E_BAD_DATE with *why "no offset and no zone" (deflt NULL) or "out of range". */
int zql_iso8601_resolve(const zql_iso_t *iso, const zql_tz_t *deflt, int64_t *ms,
                        const char **why);
/* Scan and resolve: s (n bytes, need not be NUL-terminated) to UTC ms. 0 or
 * ZQL_E_BAD_DATE. No allocation; thread-safe. */
int zql_parse_iso8601(const char *s, size_t n, const zql_tz_t *deflt, int64_t *ms);
/* Why zql_parse_iso8601 failed on the same arguments: a static, lowercase message such as
 * "day out of range" or "no offset and no zone"; NULL when it succeeds. */
const char *zql_iso8601_error(const char *s, size_t n, const zql_tz_t *deflt);

/* }==== */

/* {==== strftime ========================================================================= */

/* Format instant t in zone z with the pattern fmt (fmtlen bytes; see the file comment)
 * into buf like snprintf: at most cap - 1 bytes and a NUL (when cap > 0). Returns the
 * length of the whole result, so a result >= cap means it was cut short. */
size_t zql_tz_format(char *buf, size_t cap, const char *fmt, size_t fmtlen,
                     const zql_tz_t *z, int64_t utc_ms);
/* The same, appended to sb. */
void zql_tz_format_sb(zql_strbuf_t *sb, const char *fmt, size_t fmtlen, const zql_tz_t *z,
                      int64_t utc_ms);

/* }==== */

#endif
