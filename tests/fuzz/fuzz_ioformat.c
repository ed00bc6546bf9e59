/*
 * fuzz_ioformat.c -- libFuzzer target for the import path: bytes -> runtime/ioformat.c's
 * reader (format detection, gzip, mongodump BSON framing, NDJSON / extended JSON,
 * Zarkov's $datetime) -> each accepted document written back as NDJSON and as BSON.
 *
 * Every file a user imports goes through this code, so it must survive any input: a
 * crash, a sanitizer report, a leak or a time-out is a bug. The reader is driven to the
 * end (bad records are skipped, as `zql import` does without --strict), bounded so that a
 * reader that never advanced would be a time-out, not an endless loop.
 *
 * Build and run: tests/fuzz/run-fuzz.sh SECONDS ioformat (see tests/fuzz/README.md).
 */
#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/ioformat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  zql_ioreader_opts_t ro = ZQL_IOREADER_OPTS_INIT;
  ro.datetime = size > 0 && (data[0] & 1);
  ro.max_doc = 1u << 20;
  zql_strbuf_t err = ZQL_STRBUF_INIT, sink = ZQL_STRBUF_INIT;
  zql_ioreader_t *r = NULL;
  zql_iowriter_t *wj = NULL, *wb = NULL;
  zql_iowriter_opts_t oj = {ZQL_IOFMT_NDJSON, false, 0}, ob = {ZQL_IOFMT_BSON, true, 1};
  if (zql_ioreader_open_mem(data, size, "fuzz", &ro, &r, &err) != 0)
    goto out;
  if (zql_iowriter_open_mem(&sink, &oj, &wj, &err) != 0 ||
      zql_iowriter_open_mem(&sink, &ob, &wb, &err) != 0)
    goto out;
  for (size_t guard = 0; guard <= size + 1; guard++) {
    const bson_t *doc;
    zql_iowhere_t where;
    zql_strbuf_reset(&err);
    int rc = zql_ioreader_next(r, &doc, &where, &err);
    if (rc == 0 || rc == ZQL_E_IO || rc == ZQL_E_NOMEM)
      break;
    if (rc < 0)
      continue; /* a bad record: skipped, as zql import does */
    zql_iowriter_write(wj, doc, &err);
    zql_iowriter_write(wb, doc, &err);
    if (sink.len > (8u << 20))
      zql_strbuf_reset(&sink);
  }
out:
  if (wj)
    zql_iowriter_close(wj, NULL);
  if (wb)
    zql_iowriter_close(wb, NULL);
  zql_ioreader_close(r);
  zql_strbuf_release(&err);
  zql_strbuf_release(&sink);
  return 0;
}
