/*
 * run-unit.c -- the unit-test runner: every group of tests/unit/test_*.c, one binary.
 *
 *   tests/unit/run-unit [GROUP...]      (no argument: all groups, in the order below)
 *
 * Each group runs in a forked child, so a crash (a signal, or an abort from a sanitizer)
 * fails that group and the runner goes on with the next one (libuv's test runner does the
 * same per test). The exit status is 0 when every group passed, 1 otherwise.
 *
 * Output: with CMOCKA_MESSAGE_OUTPUT=TAP (set by `make check`), cmocka prints one TAP plan
 * per group, numbered from 1 each time, which a TAP consumer rejects. So the child's
 * stdout goes to a temporary file and the runner re-emits it as one stream: results
 * renumbered and prefixed with their group ("ok 7 - arena: test_reset"), per-group plans
 * dropped, diagnostics kept, and one plan "1..N" at the end. cmocka's "not ok N # SKIP"
 * becomes "ok N # SKIP" (a skip is not a failure). A group that crashes or reports fewer
 * results than it planned adds a "not ok" of its own. Without TAP the child writes
 * straight to stdout in cmocka's usual format.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <errno.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/base/alloc.h"

typedef struct {
  const char *name;
  int (*run)(void);
} group_t;

/* ORDER: unit.h declares these in the same order. */
static const group_t groups[] = {
    {"arena", zql_unit_arena},   {"strbuf", zql_unit_strbuf}, {"error", zql_unit_error},
    {"source", zql_unit_source}, {"parse", zql_unit_parse},   {"registry", zql_unit_registry},
    {"text", zql_unit_text},     {"crc32c", zql_unit_crc32c}, {"evlog", zql_unit_evlog},
    {"gen", zql_unit_gen},       {"ioformat", zql_unit_ioformat},
    {"func", zql_unit_func},     {"output", zql_unit_output},
    {"value", zql_unit_value},   {"agg", zql_unit_agg},
    {"agg_sketch", zql_unit_agg_sketch}, {"tz", zql_unit_tz},
    {"func_time", zql_unit_func_time}, {"store", zql_unit_store},
    {"store_input", zql_unit_store_input},
    {"ingest", zql_unit_ingest},
    {"deadletter", zql_unit_deadletter},
    {"cron", zql_unit_cron},
    {"sched", zql_unit_sched},
    {"zqld_config", zql_unit_zqld_config},
    {"log", zql_unit_log},
    {"evmatch", zql_unit_evmatch},
    {"client", zql_unit_client},
    {"zqld_http", zql_unit_zqld_http},
    {"ackjournal", zql_unit_ackjournal},
    {"zqld_ingest", zql_unit_zqld_ingest},
    {"pool", zql_unit_pool},
};

static int tap_number; /* results printed so far (TAP mode) */

int zql_unit_teardown(void **state)
{
  (void)state;
  zql_alloc_fail_after(-1);
  return 0;
}

/* Re-emit one line of a group's TAP output; returns 1 if it was a test result, and
 * counts failed results in *nfailed. */
static int tap_line(const char *group, char *line, int *nfailed)
{
  size_t len = strlen(line);
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  if (strncmp(line, "1..", 3) == 0 || strncmp(line, "TAP version", 11) == 0)
    return 0;
  bool is_ok = strncmp(line, "ok ", 3) == 0;
  bool not_ok = strncmp(line, "not ok ", 7) == 0;
  if (!is_ok && !not_ok) {
    printf("%s%s\n", line[0] == '#' ? "" : "# ", line);
    return 0;
  }
  char *rest = line + (is_ok ? 3 : 7);
  while (*rest >= '0' && *rest <= '9')
    rest++;
  tap_number++;
  if (strncmp(rest, " # SKIP", 7) == 0 || strncmp(rest, " # skip", 7) == 0) {
    const char *why = rest + 7;
    while (*why == ' ')
      why++;
    printf("ok %d - %s: %s # SKIP\n", tap_number, group, why);
    return 1;
  }
  if (not_ok)
    (*nfailed)++;
  if (strncmp(rest, " - ", 3) == 0)
    printf("%s %d - %s: %s\n", is_ok ? "ok" : "not ok", tap_number, group, rest + 3);
  else
    printf("%s %d - %s:%s\n", is_ok ? "ok" : "not ok", tap_number, group, rest);
  return 1;
}

/* Parse "1..N" from a group's output (its plan), or -1. */
static int tap_plan(const char *line)
{
  if (strncmp(line, "1..", 3) != 0)
    return -1;
  return atoi(line + 3);
}

/* Run one group in a child process; returns true when it passed. */
static bool run_group(const group_t *g, bool tap)
{
  FILE *out = NULL;
  if (tap && !(out = tmpfile())) {
    perror("run-unit: tmpfile");
    return false;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("run-unit: fork");
    if (out)
      fclose(out);
    return false;
  }
  if (pid == 0) {
    if (out && dup2(fileno(out), STDOUT_FILENO) < 0)
      _exit(3);
    int failed = g->run();
    fflush(stdout);
    exit(failed ? 1 : 0); /* exit, not _exit: sanitizers check for leaks at exit */
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      perror("run-unit: waitpid");
      return false;
    }
  }
  bool died = WIFSIGNALED(wstatus) || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) > 1);
  bool passed = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;

  if (tap) {
    int planned = -1, results = 0, nfailed = 0;
    char *line = NULL;
    size_t cap = 0;
    rewind(out);
    while (getline(&line, &cap, out) >= 0) {
      int p = tap_plan(line);
      if (p >= 0)
        planned = p;
      results += tap_line(g->name, line, &nfailed);
    }
    free(line);
    fclose(out);
    if (died || results < planned || planned < 0 || (!passed && nfailed == 0)) {
      tap_number++;
      if (WIFSIGNALED(wstatus))
        printf("not ok %d - %s: the group crashed (signal %d) after %d of %d tests\n",
               tap_number, g->name, WTERMSIG(wstatus), results, planned);
      else
        printf("not ok %d - %s: the group exited with status %d after %d of %d tests"
               " (its messages are above)\n",
               tap_number, g->name, WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
               results, planned);
      passed = false;
    }
    fflush(stdout);
  } else if (died) {
    printf("[ CRASHED  ] group %s (%s %d)\n", g->name,
           WIFSIGNALED(wstatus) ? "signal" : "exit status",
           WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
  }
  return passed;
}

int main(int argc, char **argv)
{
  const char *mode = getenv("CMOCKA_MESSAGE_OUTPUT");
  bool tap = mode && strcasecmp(mode, "TAP") == 0;
  int failed = 0;

  for (int i = 1; i < argc; i++) {
    bool known = false;
    for (size_t k = 0; k < ZQL_ARRAY_LEN(groups); k++)
      known |= strcmp(argv[i], groups[k].name) == 0;
    if (!known) {
      fprintf(stderr, "run-unit: unknown group '%s'; groups:", argv[i]);
      for (size_t k = 0; k < ZQL_ARRAY_LEN(groups); k++)
        fprintf(stderr, " %s", groups[k].name);
      fputc('\n', stderr);
      return 2;
    }
  }

  for (size_t k = 0; k < ZQL_ARRAY_LEN(groups); k++) {
    bool selected = argc == 1;
    for (int i = 1; i < argc; i++)
      selected |= strcmp(argv[i], groups[k].name) == 0;
    if (selected && !run_group(&groups[k], tap))
      failed++;
  }

  if (tap)
    printf("1..%d\n", tap_number);
  else
    printf("run-unit: %d group(s) failed\n", failed);
  return failed ? 1 : 0;
}
