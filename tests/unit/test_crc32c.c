/*
 * test_crc32c.c -- unit tests of CRC-32C (runtime/base/crc32c.c, layer 0).
 *
 * The check value of the CRC catalogue, the RFC 3720 (iSCSI) appendix B.4 vectors, the
 * generated slicing-by-8 tables against the bitwise definition, incremental use, and
 * agreement of the hardware and portable paths on every length and alignment.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "runtime/base/crc32c.h"

static uint32_t bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
  uint32_t c = ~crc;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

static void test_check_value(void **state)
{
  assert_int_equal(zql_crc32c("123456789", 9), 0xE3069283u);
  assert_int_equal(zql_crc32c_portable(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(zql_crc32c(NULL, 0), 0);
  assert_int_equal(zql_crc32c("a", 1), 0xC1D04330u);
}

static void test_rfc3720(void **state)
{
  uint8_t buf[48];
  memset(buf, 0, 32);
  assert_int_equal(zql_crc32c(buf, 32), 0x8A9136AAu);
  memset(buf, 0xff, 32);
  assert_int_equal(zql_crc32c(buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++)
    buf[i] = (uint8_t)i;
  assert_int_equal(zql_crc32c(buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++)
    buf[i] = (uint8_t)(31 - i);
  assert_int_equal(zql_crc32c(buf, 32), 0x113FDB5Cu);
  static const uint8_t iscsi[48] = {
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
      0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  assert_int_equal(zql_crc32c(iscsi, 48), 0xD9963A56u);
  assert_int_equal(zql_crc32c_portable(0, iscsi, 48), 0xD9963A56u);
}

static void test_tables(void **state)
{
  /* table[s][i] is the CRC state after byte i followed by s zero bytes */
  for (unsigned i = 0; i < 256; i++) {
    uint8_t b[8] = {(uint8_t)i};
    for (size_t s = 1; s <= 8; s++) {
      uint32_t want = bitwise(0, b, s);
      assert_int_equal(zql_crc32c_portable(0, b, s), want);
    }
  }
}

static void test_paths_agree(void **state)
{
  uint8_t buf[300 + 8];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof buf; i++) {
    x = x * 1103515245u + 12345u;
    buf[i] = (uint8_t)(x >> 16);
  }
  for (size_t align = 0; align < 8; align++) {
    for (size_t n = 0; n <= 300; n++) {
      uint32_t want = bitwise(0, buf + align, n);
      assert_int_equal(zql_crc32c(buf + align, n), want);
      assert_int_equal(zql_crc32c_portable(0, buf + align, n), want);
      /* incremental: split anywhere */
      size_t cut = n / 3;
      uint32_t c = zql_crc32c_extend(0, buf + align, cut);
      assert_int_equal(zql_crc32c_extend(c, buf + align + cut, n - cut), want);
    }
  }
  (void)zql_crc32c_hw();
}

int zql_unit_crc32c(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_value),
      cmocka_unit_test(test_rfc3720),
      cmocka_unit_test(test_tables),
      cmocka_unit_test(test_paths_agree),
  };
  return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
