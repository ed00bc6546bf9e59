#!/bin/sh
# check-layering.sh -- fail on any #include that goes up the stage layering (R18):
#
#   runtime/base  <-  parser  <-  planner  <-  exec  <-  runtime (services, CLI mains)
#
# A directory may include headers of its own layer and of the layers to its left, never
# of those to its right. Includes are written with the stage directory
# ("parser/ast.h"), so the check is a look at each quoted #include.
#
#   tests/check-layering.sh [SRCDIR]     (default: this script's parent's parent)
#
# Prints every offending line as FILE:LINE: ... and exits 1 if there is any.
set -u
LC_ALL=C
export LC_ALL

top=${1:-$(dirname "$0")/..}
cd "$top" || exit 2

# forbidden DIR: the include prefixes files under DIR must not use (ERE).
forbidden() {
  case $1 in
    runtime/base) echo '^(parser|planner|exec|tests)/|^runtime/([^b]|b[^a]|ba[^s]|bas[^e]|base[^/])' ;;
    parser) echo '^(planner|exec|tests)/|^runtime/([^b]|b[^a]|ba[^s]|bas[^e]|base[^/])' ;;
    planner) echo '^(exec|tests)/|^runtime/([^b]|b[^a]|ba[^s]|bas[^e]|base[^/])' ;;
    exec) echo '^tests/|^runtime/([^b]|b[^a]|ba[^s]|bas[^e]|base[^/])' ;;
  esac
}

bad=0
checked=0
for dir in runtime/base parser planner exec; do
  [ -d "$dir" ] || continue
  re=$(forbidden "$dir")
  for f in $(find "$dir" -type f \( -name '*.[ch]' -o -name '*.y' -o -name '*.l' \) | sort); do
    checked=$((checked + 1))
    # FILE:LINE:INCLUDED for every #include "..."
    hits=$(awk -v f="$f" '
      /^[ \t]*#[ \t]*include[ \t]*"/ {
        s = $0; sub(/^[^"]*"/, "", s); sub(/".*$/, "", s)
        print f ":" FNR ":" s
      }' "$f" | awk -F: -v re="$re" '$3 ~ re')
    if [ -n "$hits" ]; then
      printf '%s\n' "$hits" | while IFS=: read -r file line inc; do
        echo "$file:$line: includes \"$inc\": $dir may not depend on a later stage"
      done
      bad=1
    fi
  done
done

if [ "$checked" -eq 0 ]; then
  echo "check-layering: no source files found under $top" >&2
  exit 2
fi
if [ $bad -ne 0 ]; then
  echo "check-layering: upward includes found (layering: runtime/base <- parser <- planner <- exec <- runtime)"
  exit 1
fi
echo "check-layering: $checked files, no upward includes"
exit 0
