/*
 * cli.h -- what every `zql` subcommand gets from the command line (runtime services).
 *
 * main_zql.c parses the global options wherever they appear (before or after the
 * subcommand: `zql --data D import F` == `zql import --data D F`), removes them from argv
 * and calls the subcommand's entry point with the rest:
 *
 *   int zql_cmd_NAME(const zql_cli_t *cli, int argc, char **argv);
 *
 * argv[0] is the subcommand's name; the function parses its own options, prints results
 * to stdout and diagnostics to stderr, and returns the exit status: 0 success, 1 failure
 * (bad input, I/O error), 2 usage error.
 */
#ifndef ZQL_CLI_H
#define ZQL_CLI_H

#include "runtime/base/zql_common.h"

typedef struct zql_cli {
  const char *data_dir; /* --data DIR, else $ZQL_DATA, else "./zql-data" */
  bool data_explicit;   /* --data was given on the command line */
  bool color;           /* colour diagnostics on stderr */
  int verbosity;        /* -1 quiet, 0 normal, 1 verbose */
  bool stderr_tty;      /* progress output allowed */
} zql_cli_t;

/* A decimal integer in [lo, hi] that is all of s (option values; runtime/cmd_gen.c). */
bool zql_cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *v);
/* A usage error of subcommand cmd: "zql CMD: message" and "Try 'zql CMD --help'." on
 * stderr; returns 2, the exit status of usage errors (runtime/cmd_gen.c). */
int zql_cli_usage_error(const char *cmd, const char *fmt, ...) ZQL_PRINTF(2, 3);

/* The subcommands (runtime/cmd_*.c). */
int zql_cmd_gen(const zql_cli_t *cli, int argc, char **argv);    /* zql gen */
int zql_cmd_log(const zql_cli_t *cli, int argc, char **argv);    /* zql log check|stat */
int zql_cmd_import(const zql_cli_t *cli, int argc, char **argv); /* zql import */
int zql_cmd_export(const zql_cli_t *cli, int argc, char **argv); /* zql export */
int zql_cmd_run(const zql_cli_t *cli, int argc, char **argv);    /* zql run */
int zql_cmd_explain(const zql_cli_t *cli, int argc, char **argv);/* zql explain */
int zql_cmd_compile(const zql_cli_t *cli, int argc, char **argv);/* zql compile */
int zql_cmd_adhoc(const zql_cli_t *cli, int argc, char **argv);  /* zql -c 'QUERY' */
int zql_cmd_agg(const zql_cli_t *cli, int argc, char **argv);    /* zql agg ... */
int zql_cmd_send(const zql_cli_t *cli, int argc, char **argv);   /* zql send */
int zql_cmd_keygen(const zql_cli_t *cli, int argc, char **argv); /* zql keygen */
int zql_cmd_status(const zql_cli_t *cli, int argc, char **argv); /* zql status */

/* Sort and print diagnostics to stderr (colour per cli): runtime/cmd_run.c. */
struct zql_diags;
void zql_cli_print_diags(const zql_cli_t *cli, struct zql_diags *d);

/* A size: a number (decimals allowed) with an optional K, M, G or T (binary; "KiB", "MB"
 * accepted): runtime/cmd_run.c. */
bool zql_cli_parse_size(const char *s, uint64_t *out);

/* A --retain value: a duration ("30d", "1w2d", "36h") sets *max_age_ms, a size ("500MB",
 * "2GiB", "1T"; K/M/G/T alone are binary) sets *max_bytes; the other is 0. 0 or -1. */
int zql_parse_retain(const char *s, int64_t *max_age_ms, uint64_t *max_bytes);

#endif
