/*
 * evlog_input.h -- the event log as an executor input (runtime services -> stage 4).
 *
 * exec/ reads events through the zql_input_t interface (exec/zql_exec.h) so that it does
 * not depend on where they live. This adapter serves them from an event log reader
 * snapshot: split = zql_evlog_split (chunks of equal bytes from the sparse indexes),
 * open/next/close = an evlog cursor per chunk (zero-copy views into the mapped
 * segments). The reader must outlive every run that uses the input.
 */
#ifndef ZQL_EVLOG_INPUT_H
#define ZQL_EVLOG_INPUT_H

#include "runtime/base/zql_common.h"

#include "exec/zql_exec.h"
#include "runtime/evlog.h"

/* An input over the whole snapshot of r: (first - 1, last]. */
void zql_evlog_input(zql_evlog_reader_t *r, zql_input_t *in);

#endif
