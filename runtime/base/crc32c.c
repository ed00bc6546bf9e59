/*
 * crc32c.c -- CRC-32C, table-driven (slicing-by-8) with an SSE4.2 fast path (layer 0).
 *
 * Position: below everything durable. The event log (runtime/evlog.c) frames every record
 * with a CRC-32C of its bytes; segment headers and indexes carry one too.
 *
 * Algorithm. The reflected CRC with polynomial 0x82F63B78 is computed over the state
 * c = ~crc. Portable path: slicing-by-8 (Intel's "A Systematic Approach to Building High
 * Performance Software-based CRC Generators", 2005): table[0] is the byte-at-a-time table,
 * table[k][i] = (table[k-1][i] >> 8) ^ table[0][table[k-1][i] & 0xff], so one step folds
 * eight input bytes with eight lookups. The tables are constant data in crc32c_table.h
 * (no lazily built state); they were printed by:
 *
 *   for i in 0..255: c = i; 8 times: c = c & 1 ? (c >> 1) ^ 0x82F63B78 : c >> 1; t[0][i] = c
 *   for s in 1..7, i in 0..255: t[s][i] = (t[s-1][i] >> 8) ^ t[0][t[s-1][i] & 0xff]
 *
 * and tests/unit/test_crc32c.c recomputes every entry. Hardware path (x86-64 with SSE4.2):
 * the crc32 instruction over 8 bytes at a time, then single bytes; chosen per call by
 * __builtin_cpu_supports, which reads flags the C runtime filled at startup.
 *
 * Invariant: both paths return the same value for every input (tested on random data of
 * every length and alignment up to 300 bytes, and on the RFC 3720 vectors).
 */
#include "runtime/base/zql_common.h"

#include "runtime/base/crc32c.h"

#include "runtime/base/crc32c_table.h"

static inline uint64_t load64le(const unsigned char *p)
{
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
         (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
         (uint64_t)p[7] << 56;
}

uint32_t zql_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
  const unsigned char *p = data;
  uint32_t c = ~crc;
  while (n > 0 && ((uintptr_t)p & 7) != 0) {
    c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    n--;
  }
  while (n >= 8) {
    uint64_t w = load64le(p) ^ c;
    c = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^
        crc32c_table[5][(w >> 16) & 0xff] ^ crc32c_table[4][(w >> 24) & 0xff] ^
        crc32c_table[3][(w >> 32) & 0xff] ^ crc32c_table[2][(w >> 40) & 0xff] ^
        crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0)
    c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CRC32C_HW 1
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
                                                             size_t n)
{
  const unsigned char *p = data;
  uint64_t c = (uint32_t)~crc;
  while (n > 0 && ((uintptr_t)p & 7) != 0) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    n--;
  }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8); /* x86 is little-endian */
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    n -= 8;
  }
  while (n-- > 0)
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#endif

bool zql_crc32c_hw(void)
{
#ifdef HAVE_CRC32C_HW
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

uint32_t zql_crc32c_extend(uint32_t crc, const void *p, size_t n)
{
  if (n == 0)
    return crc;
#ifdef HAVE_CRC32C_HW
  if (__builtin_cpu_supports("sse4.2"))
    return crc32c_hw(crc, p, n);
#endif
  return zql_crc32c_portable(crc, p, n);
}

uint32_t zql_crc32c(const void *p, size_t n)
{
  return zql_crc32c_extend(0, p, n);
}
