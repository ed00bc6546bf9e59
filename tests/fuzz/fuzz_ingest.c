/*
 * fuzz_ingest.c -- libFuzzer target for zqld's event decoding (runtime/ingest.c): every
 * frame a producer sends on :6543 (BSON) or :6544 (JSON), and every HTTP body of POST
 * /api/v1/events (NDJSON, a JSON array, gzip), goes through this code before anything
 * else, from any peer.
 *
 * The first input byte picks the decoder (BSON frame, JSON frame, body as NDJSON, as
 * JSON, gzipped); the rest is the frame or body. Each accepted event must be a valid BSON
 * document (bson_validate), each rejection must say why; a crash, a sanitizer report, a
 * leak or a time-out is a bug.
 *
 * Build and run: tests/fuzz/run-fuzz.sh SECONDS ingest (see tests/fuzz/README.md).
 */
#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const bson_t *doc)
{
  size_t off;
  if (!bson_validate(doc, BSON_VALIDATE_NONE, &off))
    __builtin_trap(); /* an accepted event must be loggable */
}

static int each(void *arg, const zql_ingest_item_t *it)
{
  (void)arg;
  if (it->event)
    check(it->event);
  else if (!it->why || !*it->why)
    __builtin_trap(); /* a rejection without a reason */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t mode = data[0] % 5;
  data++;
  size--;
  zql_ingest_limits_t lim = ZQL_INGEST_LIMITS_INIT;
  lim.max_event_bytes = 1u << 16;
  lim.max_body_bytes = 1u << 20;
  zql_strbuf_t why = ZQL_STRBUF_INIT;
  zql_ingest_reason_t reason;
  bson_t out;
  int rc;
  switch (mode) {
  case 0:
    rc = zql_ingest_bson(data, size, &lim, &out, &reason, &why);
    if (rc == 0)
      check(&out);
    bson_destroy(&out);
    break;
  case 1:
    rc = zql_ingest_json((const char *)data, size, &lim, &out, &reason, &why);
    if (rc == 0)
      check(&out);
    bson_destroy(&out);
    break;
  default: {
    size_t n = 0;
    const char *ct = mode == 2 ? "application/x-ndjson" : "application/json";
    zql_ingest_body(data, size, mode == 4, ct, &lim, each, NULL, &n, &why);
    break;
  }
  }
  zql_strbuf_release(&why);
  return 0;
}
