/*
 * cmd_status.c -- `zql status`: what a running zqld reports, or what the data directory
 * holds when none runs (runtime services; issue 6, docs/zqld.md "Status").
 *
 *   zql status [--url URL] [--token T|@FILE] [--json] [--offline]
 *
 * Asks GET URL/api/v1/status (default http://127.0.0.1:8081) and prints ingest rates,
 * the log's size, and per aggregate its schedule, watermark, lag behind the log, last run
 * and error counts (--json: the document as the daemon sent it). When no daemon answers
 * (or with --offline) the log and aggregate parts are read from --data DIR directly.
 * Exit 0, 1 when neither the daemon nor the data directory can be read, 2 usage.
 */
#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/error.h"
#include "runtime/cli.h"
#include "runtime/status.h"
#include "runtime/store.h"
#include "runtime/zqld_http.h"

static void usage(FILE *f)
{
  fputs("usage: zql status [--url URL] [--token T|@FILE] [--json] [--offline]\n"
        "\n"
        "Ingest rates, the event log, and each stored aggregate's schedule, watermark, lag and\n"
        "last run, from a running zqld (GET URL/api/v1/status; default\n"
        "http://127.0.0.1:8081), else from the data directory (--data DIR).\n"
        "  --url URL      zqld's HTTP address\n"
        "  --token T      the bearer token (@FILE: the first line of FILE)\n"
        "  --json         print the status document as JSON\n"
        "  --offline      do not ask zqld; read the data directory\n",
        f);
}

static int offline(const zql_cli_t *cli, bool json)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_store_t *s = NULL;
  bson_t b = BSON_INITIALIZER;
  int rc = zql_status_log(cli->data_dir, &b, &err);
  if (!rc)
    rc = zql_store_open_lmdb(cli->data_dir, &s, &err);
  if (!rc)
    rc = zql_status_aggs(s, -1, &b, NULL, NULL, &err);
  if (s)
    zql_store_close(s);
  if (rc) {
    fprintf(stderr, "zql status: %s: %s\n", cli->data_dir, err.len ? err.buf : zql_strerror(rc));
  } else if (json) {
    char *j = bson_as_relaxed_extended_json(&b, NULL);
    puts(j ? j : "{}");
    bson_free(j);
  } else {
    zql_status_print(&b, stdout);
  }
  bson_destroy(&b);
  zql_strbuf_release(&err);
  return rc ? 1 : 0;
}

int zql_cmd_status(const zql_cli_t *cli, int argc, char **argv)
{
  const char *url = "http://127.0.0.1:8081";
  const char *token = NULL;
  char tokbuf[512];
  bool json = false, off = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
      url = argv[++i];
    } else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
      token = argv[++i];
      if (token[0] == '@') {
        FILE *f = fopen(token + 1, "r");
        if (!f || !fgets(tokbuf, sizeof tokbuf, f)) {
          fprintf(stderr, "zql status: cannot read the token file '%s'\n", token + 1);
          if (f)
            fclose(f);
          return 2;
        }
        fclose(f);
        tokbuf[strcspn(tokbuf, "\r\n")] = 0;
        token = tokbuf;
      }
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--offline") == 0) {
      off = true;
    } else {
      fprintf(stderr, "zql status: unknown option '%s'\nTry 'zql status --help'.\n", argv[i]);
      return 2;
    }
  }
  if (off)
    return offline(cli, json);
  zql_strbuf_t body = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  char full[2048];
  size_t ul = strlen(url);
  while (ul > 0 && url[ul - 1] == '/') /* http://host:8081/ */
    ul--;
  snprintf(full, sizeof full, "%.*s/api/v1/status", (int)ul, url);
  int status = 0;
  int rc = zql_http_get(full, token, 5000, &status, &body, &err);
  if (rc) {
    if (cli->verbosity >= 0)
      fprintf(stderr, "zql status: zqld does not answer at %s (%s); reading %s\n", url,
              err.len ? err.buf : zql_strerror(rc), cli->data_dir);
    zql_strbuf_release(&body);
    zql_strbuf_release(&err);
    return offline(cli, json);
  }
  int ret = 0;
  if (status != 200) {
    fprintf(stderr, "zql status: %s answered %d: %.*s\n", full, status, (int)body.len,
            body.buf ? body.buf : "");
    ret = 1;
  } else if (json) {
    fwrite(body.buf, 1, body.len, stdout);
    fputc('\n', stdout);
  } else {
    bson_error_t be;
    bson_t *b = bson_new_from_json((const uint8_t *)body.buf, (ssize_t)body.len, &be);
    if (!b) {
      fprintf(stderr, "zql status: %s: not a JSON document: %s\n", full, be.message);
      ret = 1;
    } else {
      zql_status_print(b, stdout);
      bson_destroy(b);
    }
  }
  zql_strbuf_release(&body);
  zql_strbuf_release(&err);
  return ret;
}
