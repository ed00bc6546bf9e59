/*
 * cmd_send.c -- `zql send`: events from files or stdin to a running zqld (runtime services).
 *
 *   zql send [--to ENDPOINT] [--ack] [--json] [--batch N] [--server-key Z85|@FILE]
 *            [--key FILE] [--timeout D] [--format auto|bson|ndjson] [FILE...]
 *
 * Input: each FILE ("-" or none: stdin) through runtime/ioformat.c, so NDJSON (MongoDB
 * extended JSON, and Zarkov's {"$datetime": seconds} as zsend.py reads it) and
 * concatenated BSON are detected, gzip or not. A record that does not parse is reported
 * with its file and line (or byte offset) and skipped (exit 1 at the end).
 *
 * Delivery, three ways:
 *   default   PUSH one BSON document per frame to tcp://127.0.0.1:6543: Zarkov's wire
 *             format, fire and forget (what zarkov/client.py does).
 *   --json    PUSH one JSON text per frame (canonical extended JSON) to :6544.
 *   --ack     the acked protocol on :6546 through the client library
 *             (runtime/zql_client.h): batches of --batch events, each resent with the
 *             same id until zqld says it is durable; exactly-once. Prints
 *             `sent N events: A accepted, R rejected (first _seq X, last _seq Y)` on stdout
 *             and every rejected event (FILE:LINE, the reason, the event) on stderr.
 * PUSH sockets use ZMQ_IMMEDIATE, so a send waits (up to --timeout) for a live
 * connection instead of queueing for a server that is not there, and the close lingers
 * up to --timeout to hand over what is queued.
 *
 * --timeout D (default 30s): the longest wait without progress, i.e. for a connection, a
 * free slot of the in-flight window, or the answer to the last batches.
 *
 * Exit status: 0 every event delivered (--ack: acknowledged and accepted); 1 an event
 * was rejected or unreadable, or an I/O error; 2 usage; 3 not delivered within --timeout.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include "runtime/zmqdl.h"

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/base/clock.h"
#include "runtime/cli.h"
#include "runtime/ioformat.h"
#include "runtime/zql_client.h"

/* runtime/cli.h declares the subcommands; repeated here for -Wmissing-prototypes */
int zql_cmd_send(const zql_cli_t *cli, int argc, char **argv);

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNDELIVERED = 3 };

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_BATCH 100000
#define WINDOW_EVENTS 1000000 /* events in flight at most (--ack) */
#define SHOW_EVENT 300        /* bytes of a rejected event's JSON shown */

static void usage(FILE *f)
{
  fputs("Usage: zql send [options] [FILE...]\n"
        "\n"
        "Send events (NDJSON / extended JSON or concatenated BSON, gzip or not; stdin\n"
        "when no FILE or \"-\") to a running zqld.\n"
        "\n"
        "Options:\n"
        "  --to ENDPOINT       where to (a ZeroMQ endpoint, host:port or a port on\n"
        "                      127.0.0.1); default tcp://127.0.0.1:6543, :6544 with\n"
        "                      --json, :6546 with --ack\n"
        "  --ack               use the acknowledged protocol: exactly-once, wait until\n"
        "                      every event is durable, report rejected events\n"
        "  --json              PUSH JSON text frames (Zarkov's :6544) instead of BSON\n"
        "  --batch N           events per acknowledged batch (default 1000)\n"
        "  --server-key K      CURVE: zqld's public key, Z85 text or @FILE (a key that\n"
        "                      starts with '@' is read as a file only if it exists)\n"
        "  --key FILE          CURVE: this client's key pair (zql keygen output); without\n"
        "                      it a fresh pair is used\n"
        "  --timeout D         give up after D without progress (default 30s; 500ms, 2m)\n"
        "  --format F          input format: auto (default), bson or ndjson\n"
        "  -h, --help          show this help\n"
        "\n"
        "Exit status: 0 delivered, 1 rejected or unreadable events, 2 usage,\n"
        "3 not delivered within --timeout.\n",
        f);
}

#define usage_error(...) zql_cli_usage_error("send", __VA_ARGS__)

/* "30s", "500ms", "2m", or plain seconds. */
static bool parse_timeout(const char *s, int64_t *ms)
{
  uint64_t secs;
  if (zql_cli_parse_u64(s, 1, UINT64_C(86400) * 365, &secs)) {
    *ms = (int64_t)secs * 1000;
    return true;
  }
  uint64_t bytes;
  return zql_parse_retain(s, ms, &bytes) == 0 && *ms > 0;
}

/* --to: a ZeroMQ endpoint as is; "host:port" gets tcp://; a bare port is on 127.0.0.1. */
static char *endpoint_of(const char *to, int default_port)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  uint64_t port;
  if (!to)
    zql_strbuf_addf(&sb, "tcp://127.0.0.1:%d", default_port);
  else if (strstr(to, "://"))
    zql_strbuf_adds(&sb, to);
  else if (zql_cli_parse_u64(to, 1, 65535, &port))
    zql_strbuf_addf(&sb, "tcp://127.0.0.1:%" PRIu64, port);
  else
    zql_strbuf_addf(&sb, "tcp://%s", to);
  return zql_strbuf_detach(&sb, NULL);
}

/* {==== options */

typedef struct {
  const char *to;
  bool ack, json;
  uint32_t batch;
  int64_t timeout_ms;
  zql_ioreader_opts_t ro;
  char server_key[ZQL_CLIENT_KEY_LEN + 1];
  char public_key[ZQL_CLIENT_KEY_LEN + 1];
  char secret_key[ZQL_CLIENT_KEY_LEN + 1];
  char **files;
  int nfiles;
} opts_t;

/* Returns -1 to go on, else the exit status (help or a usage error). */
static int parse_args(int argc, char **argv, opts_t *o)
{
  const char *server_key = NULL, *key_file = NULL;
  bool have_batch = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      usage(stdout);
      return EXIT_OK;
    }
    if (strcmp(arg, "--ack") == 0) {
      o->ack = true;
      continue;
    }
    if (strcmp(arg, "--json") == 0) {
      o->json = true;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      for (i++; i < argc; i++)
        o->files[o->nfiles++] = argv[i];
      break;
    }
    static const char *const valued[] = {"--to",  "--batch",   "--server-key",
                                         "--key", "--timeout", "--format"};
    const char *name = NULL, *val = NULL;
    for (size_t k = 0; k < ZQL_ARRAY_LEN(valued) && !name; k++) {
      size_t n = strlen(valued[k]);
      if (strcmp(arg, valued[k]) == 0) {
        if (i + 1 >= argc)
          return usage_error("option '%s' needs a value", arg);
        name = valued[k];
        val = argv[++i];
      } else if (strncmp(arg, valued[k], n) == 0 && arg[n] == '=') {
        name = valued[k];
        val = arg + n + 1;
      }
    }
    if (!name) {
      if (arg[0] == '-' && arg[1])
        return usage_error("unknown option '%s'", arg);
      o->files[o->nfiles++] = argv[i];
      continue;
    }
    uint64_t v;
    if (strcmp(name, "--to") == 0) {
      if (!*val)
        return usage_error("--to needs an endpoint");
      o->to = val;
    } else if (strcmp(name, "--batch") == 0) {
      if (!zql_cli_parse_u64(val, 1, MAX_BATCH, &v))
        return usage_error("--batch needs a count from 1 to %d, not '%s'", MAX_BATCH, val);
      o->batch = (uint32_t)v;
      have_batch = true;
    } else if (strcmp(name, "--server-key") == 0) {
      server_key = val;
    } else if (strcmp(name, "--key") == 0) {
      key_file = val;
    } else if (strcmp(name, "--timeout") == 0) {
      if (!parse_timeout(val, &o->timeout_ms))
        return usage_error("--timeout needs a duration such as 30s, 500ms or 2m, not '%s'", val);
    } else {
      if (zql_iofmt_parse(val, &o->ro.format) != 0 || o->ro.format == ZQL_IOFMT_NDJSON_CANONICAL)
        return usage_error("--format must be auto, bson or ndjson, not '%s'", val);
    }
  }
  if (o->ack && o->json)
    return usage_error("--json is for the PUSH endpoint; --ack sends BSON");
  if (have_batch && !o->ack)
    return usage_error("--batch is for --ack (PUSH sends one event per message)");
  if (key_file && !server_key)
    return usage_error("--key needs --server-key (the server's public key)");
  char err[ZQL_CLIENT_ERRLEN];
  if (server_key) {
    /* '@' is also a Z85 character: "@REST" is a file when REST exists, else a key when
     * it is one (40 characters of Z85), else a file that cannot be read */
    char unused[ZQL_CLIENT_KEY_LEN + 1];
    bool is_key = strlen(server_key) == ZQL_CLIENT_KEY_LEN &&
                  zmq_z85_decode((uint8_t[32]){0}, server_key) != NULL;
    if (server_key[0] == '@' && (!is_key || access(server_key + 1, F_OK) == 0)) {
      if (zql_client_read_keyfile(server_key + 1, o->server_key, unused, err) != 0)
        return usage_error("--server-key: %s", err);
    } else if (!is_key) {
      return usage_error("--server-key needs a Z85 key (40 characters) or @FILE");
    } else {
      memcpy(o->server_key, server_key, ZQL_CLIENT_KEY_LEN + 1);
    }
  }
  if (key_file) {
    if (zql_client_read_keyfile(key_file, o->public_key, o->secret_key, err) != 0)
      return usage_error("--key: %s", err);
    if (!o->secret_key[0])
      return usage_error("--key: %s has no secret key (zql keygen writes one)", key_file);
  }
  if (o->nfiles == 0)
    o->files[o->nfiles++] = (char *)"-";
  return -1;
}

/* }==== */

/* {==== the input */

/* Open file i; 0 or EXIT_FAIL (reported). */
static int open_input(const opts_t *o, int i, zql_ioreader_t **r)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_ioreader_open(o->files[i], &o->ro, r, &err);
  if (rc != 0)
    fprintf(stderr, "zql send: %s\n", err.oom ? "out of memory" : err.buf);
  zql_strbuf_release(&err);
  return rc == 0 ? 0 : EXIT_FAIL;
}

/* The next document of r: 1, 0 at the end, -1 fatal (reported). Bad records are reported,
 * counted and skipped. */
static int next_doc(zql_ioreader_t *r, const bson_t **doc, zql_iowhere_t *where,
                    uint64_t *bad)
{
  for (;;) {
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    int rc = zql_ioreader_next(r, doc, where, &err);
    if (rc < 0)
      fprintf(stderr, "zql send: %s\n", err.oom ? "out of memory" : err.buf);
    zql_strbuf_release(&err);
    if (rc == ZQL_E_BAD_RECORD) {
      (*bad)++;
      continue;
    }
    return rc < 0 ? -1 : rc;
  }
}

/* }==== */

/* {==== PUSH */

static int send_push(const opts_t *o, const char *endpoint)
{
  void *ctx = zmq_ctx_new();
  void *sock = ctx ? zmq_socket(ctx, ZMQ_PUSH) : NULL;
  int status = EXIT_OK;
  if (!sock) {
    fprintf(stderr, "zql send: %s\n", zmq_strerror(errno));
    if (ctx)
      zmq_ctx_term(ctx);
    return EXIT_FAIL;
  }
  int one = 1;
  int timeout = o->timeout_ms > INT32_MAX ? INT32_MAX : (int)o->timeout_ms;
  zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one);
  zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
  zmq_setsockopt(sock, ZMQ_LINGER, &timeout, sizeof timeout);
  if (o->server_key[0]) {
    char pub[ZQL_CLIENT_KEY_LEN + 1], sec[ZQL_CLIENT_KEY_LEN + 1];
    if (o->secret_key[0]) {
      memcpy(pub, o->public_key, sizeof pub);
      memcpy(sec, o->secret_key, sizeof sec);
    } else if (zmq_curve_keypair(pub, sec) != 0) {
      fprintf(stderr, "zql send: CURVE is not available: %s\n", zmq_strerror(errno));
      status = EXIT_FAIL;
    }
    if (status == EXIT_OK &&
        (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, o->server_key, ZQL_CLIENT_KEY_LEN + 1) != 0 ||
         zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, ZQL_CLIENT_KEY_LEN + 1) != 0 ||
         zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, ZQL_CLIENT_KEY_LEN + 1) != 0)) {
      fprintf(stderr, "zql send: CURVE: %s\n", zmq_strerror(errno));
      status = EXIT_FAIL;
    }
  }
  if (status == EXIT_OK && zmq_connect(sock, endpoint) != 0) {
    fprintf(stderr, "zql send: cannot connect to '%s': %s\n", endpoint, zmq_strerror(errno));
    status = EXIT_USAGE;
  }
  uint64_t sent = 0, bad = 0;
  for (int i = 0; i < o->nfiles && status == EXIT_OK; i++) {
    zql_ioreader_t *r;
    if ((status = open_input(o, i, &r)) != EXIT_OK)
      break;
    const bson_t *doc;
    int rc;
    while ((rc = next_doc(r, &doc, NULL, &bad)) == 1) {
      const void *data = bson_get_data(doc);
      size_t len = doc->len;
      char *json = NULL;
      if (o->json) {
        json = bson_as_canonical_extended_json(doc, &len);
        data = json;
        if (!json) {
          fputs("zql send: out of memory\n", stderr);
          rc = -1;
          break;
        }
      }
      int src;
      do
        src = zmq_send(sock, data, len, 0);
      while (src < 0 && errno == EINTR);
      int e = errno;
      bson_free(json);
      if (src < 0) {
        if (e == EAGAIN) {
          fprintf(stderr, "zql send: no connection to %s within %" PRId64 " ms (is zqld"
                  " running?); %" PRIu64 " events sent\n", endpoint, o->timeout_ms, sent);
          status = EXIT_UNDELIVERED;
        } else {
          fprintf(stderr, "zql send: %s: %s\n", endpoint, zmq_strerror(e));
          status = EXIT_FAIL;
        }
        break;
      }
      sent++;
    }
    if (rc < 0 && status == EXIT_OK)
      status = EXIT_FAIL;
    zql_ioreader_close(r);
  }
  /* the close lingers until the queue is handed over, or the timeout */
  zmq_close(sock);
  int64_t t0 = zql_mono_ms();
  zmq_ctx_term(ctx);
  if (status == EXIT_OK && sent && zql_mono_ms() - t0 >= o->timeout_ms - 10) {
    fprintf(stderr, "zql send: %s did not take every queued event within %" PRId64 " ms\n",
            endpoint, o->timeout_ms);
    status = EXIT_UNDELIVERED;
  }
  if (status == EXIT_OK || status == EXIT_FAIL)
    printf("sent %" PRIu64 " events to %s (%s frames, not acknowledged)\n", sent, endpoint,
           o->json ? "JSON" : "BSON");
  if (bad) {
    fprintf(stderr, "zql send: %" PRIu64 " unreadable records skipped\n", bad);
    if (status == EXIT_OK)
      status = EXIT_FAIL;
  }
  return status;
}

/* }==== */

/* {==== --ack */

typedef struct {
  uint32_t file;
  uint64_t line;   /* NDJSON: 1-based line; BSON: 0 */
  uint64_t offset; /* BSON: byte offset */
} loc_t;

typedef struct {
  const opts_t *o;
  loc_t *ring; /* where event i came from, at ring[i % nring] */
  uint64_t nring;
  uint64_t shown;
} ack_state_t;

static void print_reject(void *arg, uint64_t index, const bson_t *event, const char *reason)
{
  ack_state_t *s = arg;
  const loc_t *l = &s->ring[index % s->nring];
  const char *name = s->o->files[l->file];
  if (strcmp(name, "-") == 0)
    name = "stdin";
  size_t len;
  char *json = bson_as_relaxed_extended_json(event, &len);
  if (l->line)
    fprintf(stderr, "zql send: %s:%" PRIu64 ": rejected: %s", name, l->line, reason);
  else
    fprintf(stderr, "zql send: %s: offset %" PRIu64 ": rejected: %s", name, l->offset, reason);
  if (json)
    fprintf(stderr, ": %.*s%s", len > SHOW_EVENT ? SHOW_EVENT : (int)len, json,
            len > SHOW_EVENT ? "..." : "");
  fputc('\n', stderr);
  bson_free(json);
  s->shown++;
}

/* Flush until done, as long as answers keep coming within the timeout. */
static int flush_all(zql_client_t *c, int64_t timeout_ms, zql_client_stats_t *st)
{
  for (;;) {
    uint64_t before = st->batches;
    int rc = zql_client_flush(c, timeout_ms, st);
    if (rc != ZQL_CLIENT_E_TIMEOUT || st->batches == before)
      return rc;
  }
}

static int send_ack(const opts_t *o, const char *endpoint)
{
  zql_client_opts_t co;
  zql_client_opts_init(&co);
  co.batch_max_events = o->batch;
  co.batch_max_delay_ms = -1; /* the input is read as fast as it goes: batches fill */
  uint32_t window = WINDOW_EVENTS / o->batch;
  co.max_inflight_batches = window < 2 ? 2 : window > 64 ? 64 : window;
  co.send_timeout_ms = o->timeout_ms;
  if (o->server_key[0]) {
    co.server_public_key = o->server_key;
    if (o->secret_key[0]) {
      co.public_key = o->public_key;
      co.secret_key = o->secret_key;
    }
  }
  ack_state_t s = {.o = o, .nring = (uint64_t)(co.max_inflight_batches + 1) * o->batch};
  s.ring = zql_calloc(s.nring, sizeof *s.ring);
  if (!s.ring) {
    fputs("zql send: out of memory\n", stderr);
    return EXIT_FAIL;
  }
  co.on_reject = print_reject;
  co.cb_arg = &s;
  zql_client_t *c;
  char err[ZQL_CLIENT_ERRLEN];
  int rc = zql_client_connect(endpoint, &co, &c, err);
  if (rc != 0) {
    fprintf(stderr, "zql send: %s\n", err);
    zql_free(s.ring);
    return rc == ZQL_CLIENT_E_INVALID ? EXIT_USAGE : EXIT_FAIL;
  }
  int status = EXIT_OK;
  uint64_t bad = 0, index = 0;
  zql_client_stats_t st;
  zql_client_stats(c, &st);
  for (int i = 0; i < o->nfiles && status == EXIT_OK; i++) {
    zql_ioreader_t *r;
    if ((status = open_input(o, i, &r)) != EXIT_OK)
      break;
    const bson_t *doc;
    zql_iowhere_t w;
    int nrc;
    while ((nrc = next_doc(r, &doc, &w, &bad)) == 1) {
      s.ring[index % s.nring] = (loc_t){(uint32_t)i, w.line, w.offset};
      for (;;) {
        uint64_t before = st.batches;
        rc = zql_client_send(c, doc);
        zql_client_stats(c, &st);
        if (rc != ZQL_CLIENT_E_TIMEOUT || st.batches == before)
          break; /* taken, or no answer at all within the timeout */
      }
      if (rc != 0)
        break;
      index++;
    }
    zql_ioreader_close(r);
    if (rc == ZQL_CLIENT_E_TIMEOUT)
      status = EXIT_UNDELIVERED;
    else if (rc != 0 || nrc < 0)
      status = EXIT_FAIL;
    if (rc != 0 && rc != ZQL_CLIENT_E_TIMEOUT)
      fprintf(stderr, "zql send: %s\n", zql_client_last_error(c));
  }
  /* what was read is delivered even after an input error */
  if (status != EXIT_UNDELIVERED) {
    rc = flush_all(c, o->timeout_ms, &st);
    if (rc == ZQL_CLIENT_E_TIMEOUT)
      status = EXIT_UNDELIVERED;
    else if (rc != 0 && rc != ZQL_CLIENT_E_REFUSED) {
      fprintf(stderr, "zql send: %s\n", zql_client_last_error(c));
      status = EXIT_FAIL;
    }
  }
  zql_client_stats(c, &st);
  if (status == EXIT_UNDELIVERED)
    fprintf(stderr, "zql send: could not deliver within %" PRId64 " ms: %s\n", o->timeout_ms,
            zql_client_last_error(c));
  printf("sent %" PRIu64 " events: %" PRIu64 " accepted, %" PRIu64 " rejected", st.events,
         st.accepted, st.rejected + st.refused);
  if (st.pending)
    printf(", %" PRIu64 " not acknowledged", st.pending);
  if (st.accepted)
    printf(" (first _seq %" PRId64 ", last _seq %" PRId64 ")", st.first_seq, st.last_seq);
  putchar('\n');
  if (st.rejected_unlisted)
    fprintf(stderr, "zql send: %" PRIu64 " rejected events were not listed by the server (see"
            " zqld's dead-letter file for their reasons)\n", st.rejected_unlisted);
  if (bad)
    fprintf(stderr, "zql send: %" PRIu64 " unreadable records skipped\n", bad);
  if (status == EXIT_OK && (st.rejected || st.refused || bad))
    status = EXIT_FAIL;
  zql_client_close(c);
  zql_free(s.ring);
  return status;
}

/* }==== */

int zql_cmd_send(const zql_cli_t *cli, int argc, char **argv)
{
  opts_t o = {.batch = 1000, .timeout_ms = DEFAULT_TIMEOUT_MS};
  o.ro = (zql_ioreader_opts_t)ZQL_IOREADER_OPTS_INIT;
  o.ro.datetime = true; /* Zarkov's zsend.py convention */
  o.files = zql_calloc((size_t)argc + 1, sizeof *o.files);
  if (!o.files) {
    fputs("zql send: out of memory\n", stderr);
    return EXIT_FAIL;
  }
  char lerr[256];
  if (zql_zmq_load(lerr, sizeof lerr) != 0) {
    fprintf(stderr, "zql send: %s\n", lerr);
    zql_free(o.files);
    return EXIT_FAIL;
  }
  int status = parse_args(argc, argv, &o);
  if (status < 0) {
    char *endpoint = endpoint_of(o.to, o.ack ? 6546 : o.json ? 6544 : 6543);
    if (!endpoint) {
      fputs("zql send: out of memory\n", stderr);
      status = EXIT_FAIL;
    } else {
      fflush(stdout);
      status = o.ack ? send_ack(&o, endpoint) : send_push(&o, endpoint);
      zql_free(endpoint);
    }
  }
  zql_free(o.files);
  return status;
}
