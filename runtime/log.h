/*
 * log.h -- leveled, thread-safe logging to stderr for zqld (runtime services).
 *
 * One message is one line on stderr, written with a single write(2) under a process-wide
 * mutex, so lines of concurrent threads never interleave (and a line up to PIPE_BUF
 * bytes stays whole even among several processes sharing the pipe). Two formats:
 *
 *   stderr is the systemd journal:  <6>message
 *   anything else:                  2026-11-24T19:48:29.123Z zqld[4711]: info: message
 *
 * The first is sd-daemon(3)'s priority prefix (SD_ERR "<3>" ... SD_DEBUG "<7>"): journald
 * stores the priority and adds its own time stamp and identifier. stderr counts as the
 * journal when $JOURNAL_STREAM ("DEV:INODE", set by systemd for StandardError=journal)
 * names the same file as descriptor 2 (systemd.exec(5)), so a child whose stderr was
 * redirected elsewhere gets the plain format. The time is UTC (RFC 3339, milliseconds).
 *
 * Levels are syslog(3) priorities, so a level is its own journal prefix; a message is
 * written when its level <= the current level (ZQL_LOG_ERROR is always written). Control
 * characters inside a message are escaped (newline -> "\n", others -> "\xHH", tab kept),
 * one trailing newline is dropped, so a message can never forge a second line. Messages
 * longer than ZQL_LOG_MAX_LINE bytes are cut and end in "...".
 *
 * Call zql_log_init() once at start, before threads exist (it reads the environment and
 * stats stderr); zql_log() works before it with ident "zqld", level info, plain format.
 * zql_log_set_level() may be called at any time from any thread (SIGHUP reload).
 */
#ifndef ZQL_LOG_H
#define ZQL_LOG_H

#include "runtime/base/zql_common.h"

#include <stdarg.h>

enum {
  ZQL_LOG_ERROR = 3, /* LOG_ERR */
  ZQL_LOG_WARN = 4,  /* LOG_WARNING */
  ZQL_LOG_INFO = 6,  /* LOG_INFO */
  ZQL_LOG_DEBUG = 7  /* LOG_DEBUG */
};

/* Longest message text kept (bytes, before escaping). */
#define ZQL_LOG_MAX_LINE 16384

/* Set the program name shown in plain lines (NULL: "zqld"; at most 63 bytes kept), the
 * level, and detect whether stderr is the journal. Not thread-safe: call at start. */
void zql_log_init(const char *ident, int level);

/* Change the level (any thread). An unknown level is clamped into error..debug. */
void zql_log_set_level(int level);
int zql_log_get_level(void);

/* Whether a message of `level` would be written (to skip building costly messages). */
bool zql_log_enabled(int level);

/* Whether lines currently carry the journal's "<N>" prefix (as detected by init). */
bool zql_log_is_journal(void);

void zql_log(int level, const char *fmt, ...) ZQL_PRINTF(2, 3);
void zql_log_v(int level, const char *fmt, va_list ap) ZQL_PRINTF(2, 0);

/* "error", "warn", "info", "debug"; NULL for anything else. */
const char *zql_log_level_name(int level);

/* A level from its name, case-insensitively: error (or err), warn (or warning), info,
 * debug. -1 when s names no level. */
int zql_log_level_parse(const char *s);

#endif
