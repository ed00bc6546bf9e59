/*
 * extract.c -- one pass over each BSON event fills every path register (stage 4, MAP).
 *
 * Pipeline position: the scan hands an event (zero-copy BSON bytes) to zql_extract, then
 * the map program (exec/vm.c) runs over the registers filled here. This is projection
 * pushdown made physical: the plan lists the event paths the statement reads
 * (plan->extract, field steps only), zql_extract_build turns them into a trie, and each
 * event is walked once, top level first, descending only into the subdocuments some
 * path needs, and stopping a level as soon as every wanted field of it was seen. A path
 * that is absent, or that steps into a non-document, stays MISSING (R2: no implicit array
 * traversal). When a document repeats a field name, the first occurrence wins.
 *
 * The walk reads the BSON element headers directly (type byte, NUL-terminated name,
 * value) instead of going through bson_iter_t, because it is the hottest loop of the
 * engine; values are converted with zql_val_from_iter only for the fields a path wants.
 * Malformed BSON cannot get here: the event log validates every document on append and
 * checks CRCs on read. The walk still bounds-checks every length so that a damaged
 * buffer leaves paths MISSING instead of reading out of bounds.
 */
#include "runtime/base/zql_common.h"

#include "exec/exec_int.h"
#include "runtime/base/error.h"

static int trie_add(zql_xplan_t *x, zql_xnode_t *n, const char *const *fields, uint32_t nf,
                    int32_t reg)
{
  if (nf == 0) {
    n->reg = reg;
    return 0;
  }
  for (uint32_t i = 0; i < n->nkids; i++)
    if (strcmp(n->kids[i].name, fields[0]) == 0)
      return trie_add(x, &n->kids[i], fields + 1, nf - 1, reg);
  zql_xnode_t *k = zql_arena_calloc(x->arena, n->nkids + 1, sizeof *k);
  if (!k)
    return ZQL_E_NOMEM;
  if (n->nkids)
    memcpy(k, n->kids, n->nkids * sizeof *k);
  n->kids = k;
  zql_xnode_t *c = &k[n->nkids++];
  c->name = fields[0];
  c->len = (uint32_t)strlen(fields[0]);
  c->reg = -1;
  return trie_add(x, c, fields + 1, nf - 1, reg);
}

int zql_extract_build(zql_xplan_t *x, zql_strbuf_t *err)
{
  const zql_plan_t *p = x->plan;
  x->root.reg = -1;
  for (uint32_t i = 0; i < p->nextract; i++) {
    const zql_pextract_t *e = &p->extract[i];
    if (e->reg >= p->map.nregs) {
      if (err)
        zql_strbuf_addf(err, "extraction register %u out of range", (unsigned)e->reg);
      return ZQL_E_BAD_PLAN;
    }
    if (e->nfields == 0) {
      x->row_reg = e->reg;
      continue;
    }
    if (trie_add(x, &x->root, e->fields, e->nfields, e->reg) != 0) {
      if (err)
        zql_strbuf_adds(err, "out of memory");
      return ZQL_E_NOMEM;
    }
  }
  return 0;
}

static void clear(zql_val_t *regs, const zql_xnode_t *n)
{
  for (uint32_t i = 0; i < n->nkids; i++) {
    const zql_xnode_t *k = &n->kids[i];
    if (k->reg >= 0)
      regs[k->reg] = zql_val_missing();
    if (k->nkids)
      clear(regs, k);
  }
}

static int64_t le64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return (int64_t)BSON_UINT64_FROM_LE(v);
}

/* The value of the common types straight from the element's bytes (the same values
 * zql_val_from_iter gives); false for the others, which go through a bson_iter_t. */
static bool fast_value(uint8_t type, const uint8_t *p, size_t vsize, zql_val_t *out)
{
  switch (type) {
  case BSON_TYPE_UTF8: {
    size_t l = vsize - 4; /* vsize = 4 + the length, which includes the NUL */
    if (l < 1 || p[4 + l - 1] != 0)
      return false;
    *out = zql_val_str((const char *)p + 4, (uint32_t)(l - 1));
    return true;
  }
  case BSON_TYPE_INT32: {
    uint32_t v;
    memcpy(&v, p, 4);
    *out = zql_val_int((int32_t)BSON_UINT32_FROM_LE(v));
    out->flags = ZQL_VF_INT32;
    return true;
  }
  case BSON_TYPE_INT64: *out = zql_val_int(le64(p)); return true;
  case BSON_TYPE_DATE_TIME: *out = zql_val_date(le64(p)); return true;
  case BSON_TYPE_DOUBLE: {
    double d;
    uint64_t v = (uint64_t)le64(p);
    memcpy(&d, &v, 8);
    *out = zql_val_double(d);
    return true;
  }
  case BSON_TYPE_BOOL: *out = zql_val_bool(p[0] != 0); return true;
  case BSON_TYPE_NULL: *out = zql_val_null(); return true;
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    *out = zql_val_doc(p, (uint32_t)vsize, type == BSON_TYPE_ARRAY);
    return true;
  default: return false;
  }
}

/* Walk the document data[0..len) for the children of n. */
/* A BSON int32 (little-endian) at p: the length prefixes of strings, documents, binary. */
static int32_t le_i32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return (int32_t)BSON_UINT32_FROM_LE(v);
}

static void walk(zql_vm_t *vm, const zql_xnode_t *n, const uint8_t *data, uint32_t len)
{
  if (len < 5)
    return;
  const uint8_t *p = data + 4, *end = data + len - 1; /* the trailing NUL */
  uint32_t want = n->nkids, seen = 0;
  uint64_t found = 0; /* bit per kid (the first 64 kids) */
  while (p < end && seen < want) {
    uint8_t type = *p++;
    const uint8_t *name = p;
    const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
    if (!nul)
      return;
    uint32_t nlen = (uint32_t)(nul - name);
    p = nul + 1;
    /* which kid, if any, wants this field */
    const zql_xnode_t *k = NULL;
    uint32_t ki = 0;
    for (uint32_t i = 0; i < want; i++) {
      const zql_xnode_t *c = &n->kids[i];
      if (c->len == nlen && memcmp(c->name, name, nlen) == 0) {
        k = c;
        ki = i;
        break;
      }
    }
    /* the value's size, to skip it (or to bound it) */
    size_t rem = (size_t)(end - p), vsize;
    switch (type) {
    case BSON_TYPE_DOUBLE: case BSON_TYPE_DATE_TIME: case BSON_TYPE_TIMESTAMP:
    case BSON_TYPE_INT64: vsize = 8; break;
    case BSON_TYPE_INT32: vsize = 4; break;
    case BSON_TYPE_BOOL: vsize = 1; break;
    case BSON_TYPE_NULL: case BSON_TYPE_UNDEFINED: case BSON_TYPE_MINKEY:
    case BSON_TYPE_MAXKEY: vsize = 0; break;
    case BSON_TYPE_OID: vsize = 12; break;
    case BSON_TYPE_DECIMAL128: vsize = 16; break;
    case BSON_TYPE_UTF8: case BSON_TYPE_SYMBOL: case BSON_TYPE_CODE: {
      int32_t l = rem < 4 ? -1 : le_i32(p);
      if (l < 1)
        return;
      vsize = 4 + (size_t)l;
      break;
    }
    case BSON_TYPE_DOCUMENT: case BSON_TYPE_ARRAY: case BSON_TYPE_CODEWSCOPE: {
      int32_t l = rem < 4 ? -1 : le_i32(p);
      if (l < 5)
        return;
      vsize = (size_t)l;
      break;
    }
    case BSON_TYPE_BINARY: {
      int32_t l = rem < 4 ? -1 : le_i32(p);
      if (l < 0)
        return;
      vsize = 5 + (size_t)l;
      break;
    }
    case BSON_TYPE_REGEX: {
      const uint8_t *a = memchr(p, 0, rem);
      if (!a)
        return;
      const uint8_t *b = memchr(a + 1, 0, (size_t)(end - (a + 1)));
      if (!b)
        return;
      vsize = (size_t)(b + 1 - p);
      break;
    }
    case BSON_TYPE_DBPOINTER: {
      int32_t l = rem < 4 ? -1 : le_i32(p);
      if (l < 1)
        return;
      vsize = 4 + (size_t)l + 12;
      break;
    }
    default:
      return; /* unknown type: stop (the log never stores one) */
    }
    if (vsize > rem)
      return;
    if (k && !(ki < 64 && (found >> ki) & 1)) {
      if (ki < 64)
        found |= UINT64_C(1) << ki;
      seen++;
      if (k->reg >= 0 && !fast_value(type, p, vsize, &vm->regs[k->reg])) {
        /* the other types: convert through a bson_iter positioned on this element */
        bson_iter_t it;
        const uint8_t *elem = name - 1; /* the element's type byte */
        if (bson_iter_init_from_data_at_offset(&it, data, len, (uint32_t)(elem - data),
                                               nlen) &&
            zql_val_from_iter(&it, &vm->regs[k->reg]))
          vm->lossy++;
      }
      if (k->nkids && type == BSON_TYPE_DOCUMENT)
        walk(vm, k, p, (uint32_t)vsize);
    }
    p += vsize;
  }
}

void zql_extract(zql_vm_t *vm, const zql_event_t *ev)
{
  const zql_xplan_t *x = vm->x;
  clear(vm->regs, &x->root);
  if (x->row_reg >= 0)
    vm->regs[x->row_reg] = zql_val_doc(ev->doc, ev->len, false);
  if (x->plan->seq_reg >= 0)
    vm->regs[x->plan->seq_reg] = zql_val_int(ev->seq);
  walk(vm, &x->root, ev->doc, ev->len);
}
