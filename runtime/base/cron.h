/*
 * cron.h -- five-field crontab expressions in a time zone (runtime services, zqld).
 *
 * A `schedule cron "..."` clause (design/ZQL.md R18) fires an aggregate at the wall-clock
 * times of a crontab(5) expression, evaluated in the aggregate's zone. zqld's scheduler
 * (runtime/sched.h) asks zql_cron_next for the next fire time; EXPLAIN and `zql status`
 * print zql_cron_format's rendering. docs/scheduling.md is the user's description.
 *
 * Syntax (Vixie cron / cronie, crontab(5)): five fields separated by blanks,
 *     minute 0-59   hour 0-23   day-of-month 1-31   month 1-12   day-of-week 0-7
 * each a comma list of items; an item is `*`, a number N, a range `A-B`, optionally
 * followed by a step `/S` (`*` / `A-B` / `A` with a step: every S-th value of the range; a
 * lone `A/S` means `A-MAX/S`, as robfig/cron and Quartz read it). Month names JAN-DEC and
 * day names SUN-SAT may stand for numbers in their fields (case-insensitive); day-of-week 7
 * is Sunday like 0. The macros @yearly @annually @monthly @weekly @daily @midnight and
 * @hourly stand for "0 0 1 1 *", "0 0 1 * *", "0 0 * * 0", "0 0 * * *" and "0 * * * *".
 *
 * Day matching (Vixie cron): when both day-of-month and day-of-week are restricted, that
 * is neither field starts with `*`, a day matches when EITHER matches ("0 0 13 * FRI" fires
 * on every 13th and on every Friday); otherwise a day must match both (a field starting
 * with `*`, even "*\/2", counts as unrestricted for this rule only).
 *
 * Time zones and DST: see zql_cron_next.
 */
#ifndef ZQL_CRON_H
#define ZQL_CRON_H

#include "runtime/base/zql_common.h"

#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"

/* A parsed expression: one bit per allowed value. Plain data, may be copied. */
typedef struct zql_cron {
  uint64_t minutes;  /* bit m: minute m (0..59) */
  uint32_t hours;    /* bit h: hour h (0..23) */
  uint32_t mdays;    /* bit d: day-of-month d (1..31) */
  uint16_t months;   /* bit m: month m (1..12) */
  uint8_t wdays;     /* bit w: weekday w (0 = Sunday .. 6 = Saturday; 7 is stored as 0) */
  bool mday_star;    /* the day-of-month field starts with '*' */
  bool wday_star;    /* the day-of-week field starts with '*' */
} zql_cron_t;

/* Parse `text` (a NUL-terminated crontab expression, blanks around it allowed) into *out.
 * Returns 0, or ZQL_E_BAD_CRON (negative, runtime/base/error.h) with a one-line lowercase
 * message in err (when not NULL) and the 0-based byte offset of the offending text in
 * *err_col (when not NULL):
 *   "expected 5 fields, found 4"             (column: the end of the text; for too many
 *                                             fields the start of the sixth)
 *   "minute 61 is out of range 0-59"         (column: the number)
 *   "unknown month name 'foo'", "unknown day name 'friday'",
 *   "unexpected 'x' in the hour field", "empty item in the minute field",
 *   "missing value in the minute field" ("5-"), "missing step after '/' in the hour field",
 *   "step 0 in the minute field is out of range 1-59",
 *   "range 30-10 in the minute field is reversed",
 *   "unknown cron macro '@reboot' (use @yearly, ...)", "unexpected 'x' after '@daily'",
 *   "'@every' takes a duration, not a cron expression (...)" (zql_schedule_parse reads
 *                                             `cron "@every D"` as `every D`),
 *   "day-of-month 30,31 never occurs in February" (a spec that can never fire; column:
 *                                             the day-of-month field).
 * *out is unspecified on error. No allocation except for the message. */
int zql_cron_parse(const char *text, zql_cron_t *out, zql_strbuf_t *err, size_t *err_col);

/* The first fire time strictly after after_ms (UTC ms), matching the expression in the
 * local wall time of tz (NULL: UTC); fire times are whole local minutes. Local times
 * that do not exist (a spring-forward gap) fire once, at the first instant after the gap
 * (02:30 on a 02:00->03:00 night fires at 03:00 local time; several such times fire only
 * once); local times that occur twice (a fall-back fold) fire once, at their first
 * occurrence. Returns INT64_MAX when there is no fire time within the int64 ms range (or
 * within 500 years, which only an expression zql_cron_parse rejects could need). The
 * search steps by month, day, hour and minute sets, not minute by minute. */
int64_t zql_cron_next(const zql_cron_t *c, const zql_tz_t *tz, int64_t after_ms);

/* A normalised rendering, appended to sb: five numeric fields, `*` for an unrestricted
 * field, `*\/S` for full-range steps, otherwise a list of values and ranges ("0 9 * * 1-5",
 * "*\/15 * * * *", "0 0 1,15 * *"). Equal sets render equally, and parsing the rendering
 * gives the same expression (day-of-month and day-of-week keep their `*` flag). */
void zql_cron_format(const zql_cron_t *c, zql_strbuf_t *sb);

#endif
