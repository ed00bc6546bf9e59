# gen-errcodes.awk -- generate runtime/base/errcodes.h (mode=h) or docs/errors.md (mode=md)
# from runtime/base/errcodes.txt. Usage: awk -F'|' -v mode=h -f gen-errcodes.awk errcodes.txt
BEGIN {
  if (mode == "h") {
    print "/* errcodes.h -- GENERATED from runtime/base/errcodes.txt by scripts/gen-errcodes.awk."
    print " * Do not edit. ZQL_ERRCODE(number, NAME, \"E1234\", class, message) once per code, in table order. */"
  } else {
    print "# zql error codes"
    print ""
    print "Generated from `runtime/base/errcodes.txt` (`make docs/errors.md`); do not edit by hand."
    print "Every diagnostic zql prints ends with its code in brackets, such as `[E3001]`."
    print "Codes never change meaning once published. E0xxx are runtime errors, E1xxx lexical,"
    print "E2xxx syntax, E3xxx semantic errors found by the analyzer, and W39xx warnings."
    print ""
    print "| code | name | message | meaning |"
    print "|---|---|---|---|"
  }
}
/^#/ || NF == 0 { next }
{
  if (NF != 5) { printf "errcodes.txt:%d: expected 5 fields, got %d\n", NR, NF > "/dev/stderr"; exit 1 }
  if (mode == "h") {
    pre = substr($1, 1, 1) == "W" ? "ZQL_W_" : "ZQL_E_"
    printf "ZQL_ERRCODE(%s, %s%s, \"%s\", \"%s\", \"%s\")\n", substr($1, 2) + 0, pre, $2, $1, $3, $4
  } else {
    printf "| %s | `%s` | %s | %s |\n", $1, $2, $4, $5
  }
}
