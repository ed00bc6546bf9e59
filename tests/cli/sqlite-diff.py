#!/usr/bin/env python3
# sqlite-diff.py -- the helper of tests/cli/t0030-sqlite-diff.sh, the differential test of
# zql against SQLite. It does two things, and never runs a query itself: the test runs
# every ZQL query with `zql -c` and every SQL query with the sqlite3 command-line tool.
#
#   sqlite-diff.py load EVENTS.ndjson DB
#       Loads the events `zql gen --format ndjson` wrote (MongoDB relaxed extended JSON,
#       one document per line) into the SQLite table `events`, one row per event:
#       seq (= _seq, the 1-based line number), ts (timestamp in ms since the epoch) and
#       one column per field the queries read, NULL when the field is missing. Every
#       column but seq and ts has a companion NAME_t holding the BSON type of the value
#       ('int', 'long', 'double', 'string', 'bool', 'null', 'date', 'array', 'object'),
#       NULL when the field is missing, so the SQL can follow R3/R8 (`sum` skips the
#       string "18k", `x > 5` is NULL for a string x, `is missing` differs from
#       `is null`). The value columns have no declared type (BLOB affinity), so SQLite
#       keeps every value as it was bound: integers, reals and text stay apart, and
#       its ordering (NULL < numbers < text, text by memcmp) is the R7 order for them.
#       Booleans are stored as 0/1 with type 'bool'; arrays and documents as JSON text.
#       context_json and extra_json hold the whole documents as JSON text, fields in their
#       stored order, for row queries.
#
#   sqlite-diff.py compare ZQL.ndjson SQL.json [--ordered] [--col NAME=KIND]...
#       Compares zql's NDJSON rows with sqlite3 -json's output. The column names, their
#       order and the row count must be equal. With --ordered the rows must come in the
#       same order (the query had `order by`); otherwise both sides are sorted first.
#       Each column is compared by its KIND (default: exact):
#         exact     equal JSON values; numbers by exact value (int or double), and an
#                   integer from SQLite must be an integer in zql too
#         key       exact, and a group key's integral double must be printed as an
#                   integer: keys are normalised to int64 (R6)
#         json      SQLite gives JSON text (json_group_array, json_object, a stored
#                   document); its parsed value must be exactly equal, as for exact
#         date      SQLite gives ms since the epoch, zql an ISO-8601 UTC string
#                   "2024-01-01T00:00:00.000Z" (resolved point 6)
#         fsum      SQLite gives the summed values as a JSON array of [mantissa, exponent]
#                   pairs (ieee754_mantissa/ieee754_exponent, so nothing is rounded on the
#                   way); the expected sum is math.fsum of them (Shewchuk's exactly
#                   rounded sum) and zql must equal it exactly (resolved point 14)
#         avg       relative error at most 1e-12 (zql derives avg from an exact sum;
#                   SQLite's is a plain double sum)
#         quantile  SQLite gives its exact type-7 value and the number of values as a JSON
#                   array [mantissa, exponent, n] (or null when there are none); zql must
#                   be within 1% relative error (resolved point 8), and bit for bit equal
#                   while n <= 1024, where docs/sketches.md says the state is the
#                   sorted values and the result the exact type-7 value
#         hll[:P]   an integer within 3% of SQLite's count(DISTINCT ...); exactly equal
#                   while that count is at most 2^P/64 (P defaults to 14), the sparse
#                   phase docs/sketches.md documents as exact
#         topk:K    SQLite gives every value of the group with its exact count as a JSON
#                   array of [value, count]; zql's [{value, count}] must be what
#                   Space-Saving with capacity 3K guarantees (see check_topk)
#       Prints the differences and exits 1 when they differ, 0 when they match, 2 on a
#       usage or input error.
#
# Only the standard library is used, so Debian's python3 runs it as it is; its sqlite3
# module only creates and fills the table.

import datetime
import json
import math
import sqlite3
import sys

# (column, path) for every field the queries read. Fields of `context` and `extra` are
# named by their last segment; the lists are disjoint.
CONTEXT_FIELDS = ["user", "project", "neighborhood", "tool", "country", "agent_class",
                  "endpoint"]
EXTRA_FIELDS = ["bytes", "ms", "status", "file", "path", "mirror", "tags", "method",
                "success", "action", "priority", "results", "query", "referrer",
                "landing", "branch", "files", "added", "removed", "step", "ticket"]
COLUMNS = ([("type", ("type",))]
           + [(f, ("context", f)) for f in CONTEXT_FIELDS]
           + [(f, ("extra", f)) for f in EXTRA_FIELDS])

QUANTILE_EXACT_MAX = 1024     # docs/sketches.md: the exact phase of quantile
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MISSING = object()


def die(msg):
    sys.stderr.write("sqlite-diff.py: %s\n" % msg)
    sys.exit(2)


def iso_to_ms(s):
    """ms since the epoch of an ISO-8601 string with Z or an offset (integer arithmetic)."""
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.tzinfo is None:
        raise ValueError("date without an offset: %r" % s)
    delta = d - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def ms_to_iso(ms):
    """The ISO-8601 UTC string with milliseconds zql prints for a date (point 6)."""
    d = EPOCH + datetime.timedelta(milliseconds=ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def bson_value(v):
    """(SQLite value, BSON type name) of a relaxed or canonical extended-JSON value."""
    if v is None:
        return None, "null"
    if isinstance(v, bool):
        return int(v), "bool"
    if isinstance(v, int):
        # libbson's JSON reader makes an int32 of what fits, else an int64.
        return v, ("int" if -2**31 <= v < 2**31 else "long")
    if isinstance(v, float):
        return v, "double"
    if isinstance(v, str):
        return v, "string"
    if isinstance(v, list):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":")), "array"
    if isinstance(v, dict):
        if len(v) == 1:
            (k, x), = v.items()
            if k == "$date":
                if isinstance(x, dict) and "$numberLong" in x:
                    return int(x["$numberLong"]), "date"
                if isinstance(x, int):
                    return x, "date"
                return iso_to_ms(x), "date"
            if k == "$numberInt":
                return int(x), "int"
            if k == "$numberLong":
                return int(x), "long"
            if k == "$numberDouble":
                return float(x), "double"
        return json.dumps(v, ensure_ascii=False, separators=(",", ":")), "object"
    raise ValueError("unexpected JSON value %r" % (v,))


def lookup(doc, path):
    for step in path:
        if not isinstance(doc, dict) or step not in doc:
            return MISSING
        doc = doc[step]
    return doc


def load(src, dbpath):
    names = ["seq", "ts"]
    for col, _ in COLUMNS:
        names += [col, col + "_t"]
    names += ["context_json", "extra_json"]
    decl = ["seq INTEGER PRIMARY KEY", "ts INTEGER"] + names[2:]
    rows = []
    with open(src, encoding="utf-8") as f:
        for seq, line in enumerate(f, 1):
            doc = json.loads(line)
            ts, ts_type = bson_value(doc["timestamp"])
            if ts_type != "date":
                die("%s:%d: timestamp is not a date" % (src, seq))
            row = [seq, ts]
            for _, path in COLUMNS:
                v = lookup(doc, path)
                row += [None, None] if v is MISSING else list(bson_value(v))
            for part in ("context", "extra"):
                v = doc.get(part, MISSING)
                row.append(None if v is MISSING else
                           json.dumps(v, ensure_ascii=False, separators=(",", ":")))
            rows.append(row)
    db = sqlite3.connect(dbpath)
    db.execute("DROP TABLE IF EXISTS events")
    db.execute("CREATE TABLE events(%s)" % ", ".join(decl))
    db.executemany("INSERT INTO events VALUES (%s)" % ", ".join("?" * len(names)), rows)
    db.commit()
    db.close()
    print("loaded %d events into %s" % (len(rows), dbpath))


# ---- comparison ---------------------------------------------------------------------------

def r7_key(v):
    """A sort key in the R7 order for the JSON values results hold: null < numbers <
    strings (by UTF-8 bytes) < documents < arrays < booleans."""
    if v is None:
        return (1,)
    if isinstance(v, bool):
        return (8, v)
    if isinstance(v, (int, float)):
        return (2, v)
    if isinstance(v, str):
        return (3, v.encode("utf-8"))
    if isinstance(v, dict):
        return (4, [(k.encode("utf-8"), r7_key(x)) for k, x in v.items()])
    if isinstance(v, list):
        return (5, [r7_key(x) for x in v])
    raise ValueError("unexpected value %r" % (v,))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same_exact(z, s):
    """zql value z equals SQLite value s (already normalised): numbers by exact value."""
    if is_num(s):
        if not is_num(z):
            return False
        if is_int(s) and not is_int(z):
            return False
        if isinstance(s, float) and math.isnan(s):
            return isinstance(z, float) and math.isnan(z)
        return z == s
    if isinstance(s, list):
        return (isinstance(z, list) and len(z) == len(s)
                and all(same_exact(a, b) for a, b in zip(z, s)))
    if isinstance(s, dict):
        return (isinstance(z, dict) and list(z) == list(s)
                and all(same_exact(z[k], s[k]) for k in s))
    return type(z) is type(s) and z == s


def within(z, s, rel):
    if s is None or z is None:
        return z is None and s is None
    if not is_num(z) or not is_num(s):
        return False
    return abs(z - s) <= rel * abs(s)


def exact_sum(pairs):
    if pairs is None:
        return 0
    return math.fsum(math.ldexp(m, e) for m, e in json.loads(pairs))


def value_key(v):
    """A hashable identity for a topk value: integral doubles equal integers (R6)."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return json.dumps(v, sort_keys=True)


def check_topk(z, s, k):
    """zql's topk(e, k) array z against the exact per-value counts s (JSON text of
    [[value, count], ...]) of the same group. Space-Saving with capacity m = 3k
    (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and top-k elements
    in data streams", ICDT 2005) never underestimates a monitored value and overestimates
    by at most the smallest counter, which is at most N/m; with at most m distinct values
    nothing is ever evicted and every count is exact. So:
      * the array has min(k, distinct) entries, ordered by count desc, then R7 order;
      * every entry is a real value with true <= count <= true + eps, where eps = 0 when
        there are at most m distinct values, N/m otherwise;
      * a value left out cannot beat an entry by more than eps: true(v) <= true(u) + eps;
        so when the k-th and (k+1)-th true counts are more than eps apart (well
        separated), the entries are exactly the true top k; with eps = 0 the whole array
        must be the exact top k with R7 tie-breaks.
    docs/sketches.md documents these bounds, and resolved point 14 lets topk differ
    between splits of the input (threads, chunks) only within them.
    Returns a list of problems (empty when z is right)."""
    exact = [(v, c) for v, c in json.loads(s)] if s is not None else []
    counts = {}
    for v, c in exact:
        counts[value_key(v)] = c
    n = sum(c for _, c in exact)
    m = 3 * k
    eps = 0 if len(exact) <= m else n / m
    if not isinstance(z, list):
        return ["topk is not an array: %r" % (z,)]
    want = sorted(exact, key=lambda vc: (-vc[1], r7_key(vc[0])))
    problems = []
    if len(z) != min(k, len(exact)):
        problems.append("topk has %d entries, expected %d" % (len(z), min(k, len(exact))))
    got = []
    for item in z:
        if not isinstance(item, dict) or list(item) != ["value", "count"] \
                or not is_int(item["count"]):
            return problems + ["topk entry is not {value, count}: %r" % (item,)]
        key = value_key(item["value"])
        if key not in counts:
            problems.append("topk value %r does not occur" % (item["value"],))
            continue
        true = counts[key]
        if not true <= item["count"] <= true + eps:
            problems.append("topk count of %r is %d, true count %d (allowed error %g)"
                            % (item["value"], item["count"], true, eps))
        got.append((key, item["value"], item["count"], true))
    for a, b in zip(z, z[1:]):
        if isinstance(a, dict) and isinstance(b, dict) and "count" in a and "count" in b:
            if (-a["count"], r7_key(a["value"])) > (-b["count"], r7_key(b["value"])):
                problems.append("topk entries out of order: %r before %r" % (a, b))
    if got:
        floor = min(t for _, _, _, t in got)
        inside = {key for key, _, _, _ in got}
        for v, c in want:
            if value_key(v) not in inside and c > floor + eps:
                problems.append("topk misses %r (true count %d > %d + %g)"
                                % (v, c, floor, eps))
    if eps == 0 and not problems:
        expect = [{"value": v, "count": c} for v, c in want[:k]]
        if not same_exact(z, expect):
            problems.append("topk is not the exact top %d %s" % (k, json.dumps(expect)))
    return problems


def normalise_sql(row, kinds):
    """SQLite's row with date columns as zql prints them and fsum columns summed."""
    out = {}
    for name, v in row.items():
        kind = kinds.get(name, "exact")
        try:
            if kind == "date" and v is not None:
                v = ms_to_iso(v)
            elif kind == "fsum":
                v = exact_sum(v)
            elif kind == "json" and v is not None:
                v = json.loads(v)
            elif kind == "quantile" and v is not None:
                m, e, n = json.loads(v)
                v = (math.ldexp(m, e), n)
        except (TypeError, ValueError) as e:
            die("SQLite's column %s does not hold what --col %s=%s needs: %r (%s)"
                % (name, name, kind, v, e))
        out[name] = v
    return out


def compare_cell(kind, z, s):
    """A list of problems with zql's cell z against SQLite's s."""
    if kind in ("exact", "date", "json"):
        return [] if same_exact(z, s) else ["differs"]
    if kind == "key":
        if not same_exact(z, s):
            return ["differs"]
        if isinstance(s, float) and s.is_integer() and abs(s) < 2.0**63 and not is_int(z):
            return ["an integral key is not normalised to an integer (R6)"]
        return []
    if kind == "fsum":
        if not is_num(z) or z != s:
            return ["not the exactly rounded sum %r" % s]
        return []
    if kind == "avg":
        return [] if within(z, s, 1e-12) else ["relative error above 1e-12"]
    if kind == "quantile":
        if s is None:
            return [] if z is None else ["not null on no numeric input"]
        exact, n = s
        if n <= QUANTILE_EXACT_MAX:
            if not is_num(z) or z != exact:
                return ["not the exact type-7 value %r of %d values" % (exact, n)]
            return []
        if not within(z, exact, 0.01):
            return ["not within 1%% of the exact quantile %r of %d values" % (exact, n)]
        return []
    if kind == "hll" or kind.startswith("hll:"):
        p = int(kind[4:]) if kind.startswith("hll:") else 14
        if not is_int(z):
            return ["not an integer"]
        if s <= 2**p // 64:
            return [] if z == s else ["not exact at %d <= 2^%d/64 values" % (s, p)]
        return [] if within(z, s, 0.03) else ["not within 3% of the exact count"]
    if kind.startswith("topk:"):
        return check_topk(z, s, int(kind[5:]))
    raise ValueError("unknown column kind %r" % kind)


def read_ndjson(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    die("%s:%d: not JSON: %s" % (path, i, e))
    return rows


def read_sqlite_json(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():         # sqlite3 -json prints nothing for no rows
        return []
    try:
        return json.loads(text)
    except ValueError as e:
        die("%s: not JSON: %s" % (path, e))


def show(row, width=400):
    """A row as one line of JSON, cut to width characters (topk columns from SQLite hold
    every value of the group)."""
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[:width] + "...(%d more)" % (len(text) - width)


def compare(argv):
    ordered = False
    kinds = {}
    files = []
    args = iter(argv)
    for a in args:
        if a == "--ordered":
            ordered = True
        elif a == "--col":
            spec = next(args, None)
            if spec is None or "=" not in spec:
                die("--col takes NAME=KIND")
            name, kind = spec.split("=", 1)
            kinds[name] = kind
        else:
            files.append(a)
    if len(files) != 2:
        die("usage: compare ZQL.ndjson SQL.json [--ordered] [--col NAME=KIND]...")
    zrows = read_ndjson(files[0])
    srows = [normalise_sql(r, kinds) for r in read_sqlite_json(files[1])]

    problems = []
    zcols = list(zrows[0]) if zrows else None
    scols = list(srows[0]) if srows else None
    for r in zrows:
        if list(r) != zcols:
            problems.append("zql rows have different columns: %s" % show(r))
            break
    if zcols is not None and scols is not None and zcols != scols:
        problems.append("columns differ: zql %s, sqlite %s" % (zcols, scols))
    for name in kinds:
        if scols is not None and name not in scols:
            problems.append("--col %s names no column of the SQL result" % name)
    if not zrows and not srows:
        problems.append("no rows on either side: the pair tests nothing")
    if len(zrows) != len(srows):
        problems.append("row counts differ: zql %d, sqlite %d" % (len(zrows), len(srows)))
    if problems:
        return report(problems, zrows, srows)

    if not ordered:
        def sort_key(r):
            return [r7_key(v) for c, v in r.items()
                    if kinds.get(c, "exact") in ("exact", "key", "date", "json")]
        zrows = sorted(zrows, key=sort_key)
        srows = sorted(srows, key=sort_key)
    bad = 0
    for i, (z, s) in enumerate(zip(zrows, srows)):
        cells = []
        for c in scols or []:
            for p in compare_cell(kinds.get(c, "exact"), z[c], s[c]):
                cells.append("%s: %s" % (c, p))
        if cells:
            bad += 1
            if bad <= 8:
                problems.append("row %d: %s" % (i + 1, "; ".join(cells)))
                problems.append("  zql:    %s" % show(z))
                problems.append("  sqlite: %s" % show(s))
    if bad > 8:
        problems.append("... %d rows differ in all" % bad)
    if problems:
        return report(problems, zrows, srows)
    print("%d rows match" % len(zrows))
    return 0


def report(problems, zrows, srows):
    for p in problems:
        print(p)
    for label, rows in (("zql", zrows), ("sqlite", srows)):
        print("%s answer (%d rows%s):" % (label, len(rows), ", first 5" if len(rows) > 5 else ""))
        for r in rows[:5]:
            print("  " + show(r))
    return 1


def main(argv):
    if len(argv) >= 2 and argv[1] == "load" and len(argv) == 4:
        load(argv[2], argv[3])
        return 0
    if len(argv) >= 2 and argv[1] == "compare":
        return compare(argv[2:])
    die("usage: sqlite-diff.py load EVENTS.ndjson DB | compare ZQL.ndjson SQL.json [OPTIONS]")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
