#!/usr/bin/env python3
"""Nexmark in Apache Flink: golden outputs and events per CPU-second, per query.

    PY=$(scripts/flink/setup.sh)
    citybrain simulate --nexmark --out DATA --events N [--seed S] [--sim-rate R]
    $PY scripts/flink/nexmark.py golden DATA --all              # rules/tests/nexmark/*/flink_expected.jsonl
    $PY scripts/flink/nexmark.py golden DATA --out DIR q5 q7    # DIR/q5.jsonl, DIR/q7.jsonl
    $PY scripts/flink/nexmark.py golden DATA --print q8         # rows on stdout
    $PY scripts/flink/nexmark.py bench DATA --all               # events per CPU-second
    $PY scripts/flink/nexmark.py explain DATA q5                # Flink's plan
    $PY scripts/flink/nexmark.py canon ROWS.jsonl [--field data]  # rows and canonical sha256

DATA holds person.jsonl, auction.jsonl and bid.jsonl. The tables are declared by running
feeds/nexmark.sql as it is, each 'path' set to DATA/<table>.jsonl. A case is a folder
rules/tests/nexmark/<q>/ with `query.sql` (one SELECT; `--` comment lines and a trailing `;`
dropped); `--all` takes every case.

golden: Flink's rows for each case, as scripts/flink/golden.py writes them (one JSON object per
row, keys in select order, TIMESTAMP as "YYYY-MM-DDTHH:MM:SS.sssZ", DECIMAL as a JSON number,
lines sorted bytewise), with golden.py's Flink setup: streaming mode, parallelism 1, session
time zone UTC, the watermark emitted after every event that raises it. Each case also prints
`<case> rows N canonical-sha256 HEX`: the checksum of the rows in the canonical form
engine/tests/flink.rs compares (keys sorted, every number as `{:.9e}` in Rust's format, lines
sorted), which `canon` computes for citybrain's alerts (`--field data`) the same way. The
1M-event check (scripts/nexmark-check.sh) compares those.

bench: each case as `INSERT INTO` a blackhole sink, streaming mode, parallelism 1, Flink's
default watermark interval, after a warm-up run of every case over the first 20000 lines of each
table (mini-cluster start, JIT). Printed per case: events of the data set (all three tables,
Nexmark's measure), wall seconds, CPU seconds of the Java process tree during the job
(user+system from /proc) and events per CPU-second.
"""

import datetime as _dt
import decimal
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time

os.environ["TZ"] = "UTC"
if hasattr(time, "tzset"):
    time.tzset()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CASES = os.path.join(REPO, "rules", "tests", "nexmark")
CATALOG = os.path.join(REPO, "feeds", "nexmark.sql")
TABLES = ("person", "auction", "bid")
sys.path.insert(0, HERE)


def statements(path):
    """The SQL statements of a file: comment lines dropped, split at `;` ending a line."""
    with open(path, encoding="utf-8") as f:
        text = "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def declare(t_env, data):
    """Runs feeds/nexmark.sql with each table's 'path' pointing into `data`."""
    for stmt in statements(CATALOG):
        m = re.match(r"CREATE\s+TABLE\s+`?(\w+)`?", stmt, re.I)
        if not m:
            raise ValueError("%s: not a CREATE TABLE: %s" % (CATALOG, stmt[:60]))
        table = m.group(1)
        path = os.path.join(os.path.abspath(data), table + ".jsonl")
        stmt, n = re.subn(r"'path'\s*=\s*'[^']*'", "'path' = 'file://%s'" % path, stmt)
        if n != 1:
            raise ValueError("%s: table %s has no 'path' option" % (CATALOG, table))
        t_env.execute_sql("DROP TABLE IF EXISTS `%s`" % table)
        t_env.execute_sql(stmt)


def case_dirs(args):
    if args == ["--all"]:
        return sorted(
            (os.path.join(CASES, d) for d in os.listdir(CASES)
             if os.path.isfile(os.path.join(CASES, d, "query.sql"))),
            key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0))
    return [a if os.sep in a else os.path.join(CASES, a) for a in args]


def _fmt(v):
    """A PyFlink value to its JSON value, as golden.py renders Java values."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("non-finite float %r has no JSON form" % v)
        return v
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() and v.as_tuple().exponent >= 0 else float(v)
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (v.microsecond // 1000)
    if isinstance(v, _dt.date):
        return v.isoformat()
    raise TypeError("unsupported result value %r" % (v,))


def _from_sink(value, root):
    """A value as Flink's JSON format wrote it (ISO-8601 timestamps, plain decimals) to the
    Python value `collect()` would have given, by the column's type root."""
    if value is None:
        return None
    if root.startswith("TIMESTAMP"):
        text = value.rstrip("Z")
        fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
        if text.count(":") == 1:
            fmt = "%Y-%m-%dT%H:%M"
        return _dt.datetime.strptime(text, fmt)
    return value


def golden_rows(t_env, case):
    """Flink's rows for a case. The query runs `INSERT INTO` a `filesystem` JSON sink (a
    million rows handed to Python one by one through `collect()` take an hour), with
    checkpoints every second so that the file is committed when the bounded job ends; values
    are read back by column type into what `collect()` gives."""
    from golden import read_query

    query = read_query(case)
    columns = t_env.sql_query(query)._j_table.getResolvedSchema().getColumns()
    names = [c.getName() for c in columns]
    if len(set(names)) != len(names):
        raise ValueError("duplicate output column names %r" % (names,))
    roots = [c.getDataType().getLogicalType().getTypeRoot().toString() for c in columns]
    out = tempfile.mkdtemp(prefix="nexmark-golden-")
    try:
        ddl = ", ".join("`%s` %s" % (c.getName(), re.sub(r"\s*\*(ROWTIME|PROCTIME)\*", "",
                                                         c.getDataType().toString()))
                        for c in columns)
        t_env.execute_sql("DROP TEMPORARY TABLE IF EXISTS golden_sink")
        t_env.execute_sql(
            "CREATE TEMPORARY TABLE golden_sink (%s) WITH ('connector' = 'filesystem', "
            "'path' = 'file://%s', 'format' = 'json', "
            "'json.timestamp-format.standard' = 'ISO-8601', "
            "'json.encode.decimal-as-plain-number' = 'true')" % (ddl, out))
        # Append-only sinks refuse updates: a query producing a changelog fails here.
        t_env.execute_sql("INSERT INTO golden_sink " + query).wait()
        lines = []
        for root, _, files in os.walk(out):
            for name in sorted(files):
                if name.startswith("."):
                    raise RuntimeError("uncommitted sink file %s" % name)
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    for line in f:
                        if not line.strip():
                            continue
                        row = json.loads(line, parse_float=decimal.Decimal)
                        values = []
                        for n, r in zip(names, roots):
                            v = _from_sink(row.get(n), r)
                            if isinstance(v, decimal.Decimal) and r in ("DOUBLE", "FLOAT"):
                                v = float(v)
                            values.append(_fmt(v))
                        lines.append(json.dumps(dict(zip(names, values)), ensure_ascii=False,
                                                separators=(",", ":")))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    lines.sort(key=lambda s: s.encode("utf-8"))
    return lines


def golden(data, args):
    from golden import _env

    out_dir = None
    show = False
    if args[:1] == ["--print"]:
        show, args = True, args[1:]
    elif args[:1] == ["--out"]:
        out_dir, args = args[1], args[2:]
        os.makedirs(out_dir, exist_ok=True)
    t_env = _env()
    t_env.get_config().set("execution.checkpointing.interval", "1 s")
    declare(t_env, data)
    failed = 0
    for case in case_dirs(args):
        name = os.path.basename(os.path.normpath(case))
        t0 = time.time()
        try:
            lines = golden_rows(t_env, case)
        except Exception as e:  # report and go on with the other cases
            failed += 1
            print("FAILED %s: %s" % (name, e), file=sys.stderr)
            continue
        text = "".join(l + "\n" for l in lines).encode("utf-8")
        if show:
            sys.stdout.write(text.decode("utf-8"))
        else:
            path = (os.path.join(out_dir, name + ".jsonl") if out_dir
                    else os.path.join(case, "flink_expected.jsonl"))
            with open(path, "wb") as f:
                f.write(text)
        n, digest = canonical_digest(lines)
        print("%s rows %d canonical-sha256 %s" % (name, n, digest))
        print("%s: %.1f s" % (name, time.time() - t0), file=sys.stderr)
    return 1 if failed else 0


def _rust_e9(f):
    """Rust's `format!("{:.9e}", f)`: 4105.068 -> "4.105068000e3"."""
    mantissa, exp = ("%.9e" % f).split("e")
    return "%se%d" % (mantissa, int(exp))


def canonical(value):
    """A row as engine/tests/flink.rs compares it: numbers as Rust's {:.9e}, keys sorted."""
    def norm(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return _rust_e9(float(v))
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        raise TypeError(v)
    return json.dumps(norm(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_digest(lines, field=None):
    """(rows, sha256 hex) of JSON lines in canonical form, sorted bytewise."""
    rows = []
    for line in lines:
        if line.strip():
            v = json.loads(line)
            rows.append(canonical(v[field] if field else v).encode("utf-8"))
    rows.sort()
    h = hashlib.sha256()
    for r in rows:
        h.update(r + b"\n")
    return len(rows), h.hexdigest()


def canon(args):
    field = None
    if len(args) == 3 and args[1] == "--field":
        field = args[2]
    elif len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        n, digest = canonical_digest(f, field)
    print("rows %d canonical-sha256 %s" % (n, digest))
    return 0


def _sink_ddl(t_env, name, query):
    cols = []
    for c in t_env.sql_query(query)._j_table.getResolvedSchema().getColumns():
        ty = re.sub(r"\s*\*(ROWTIME|PROCTIME)\*", "", c.getDataType().toString())
        cols.append("`%s` %s" % (c.getName(), ty))
    return "CREATE TEMPORARY TABLE `%s` (%s) WITH ('connector' = 'blackhole')" % (
        name, ", ".join(cols))


def bench(data, args):
    from bench import java_tree_cpu
    from golden import read_query
    from pyflink.table import EnvironmentSettings, TableEnvironment

    warmup = True
    if args[:1] == ["--no-warmup"]:
        warmup, args = False, args[1:]
    cases = case_dirs(args)
    events = 0
    for t in TABLES:
        with open(os.path.join(data, t + ".jsonl"), "rb") as f:
            events += sum(1 for line in f if line.strip())
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", "1")
    conf.set("table.local-time-zone", "UTC")

    def run(case):
        name = os.path.basename(os.path.normpath(case))
        query = read_query(case)
        t_env.execute_sql("DROP TEMPORARY TABLE IF EXISTS `sink_%s`" % name)
        t_env.execute_sql(_sink_ddl(t_env, "sink_" + name, query))
        c0, w0 = java_tree_cpu(), time.time()
        t_env.execute_sql("INSERT INTO `sink_%s` %s" % (name, query)).wait()
        return time.time() - w0, java_tree_cpu() - c0

    if warmup:
        head = tempfile.mkdtemp(prefix="nexmark-warmup-")
        for t in TABLES:
            with open(os.path.join(data, t + ".jsonl"), "rb") as fi, \
                    open(os.path.join(head, t + ".jsonl"), "wb") as fo:
                for k, line in enumerate(fi):
                    if k >= 20000:
                        break
                    fo.write(line)
        declare(t_env, head)
        w0 = time.time()
        for case in cases:
            run(case)
        print("warm-up: every case over 20000 lines a table, %.1f s" % (time.time() - w0))
        shutil.rmtree(head)
    declare(t_env, data)
    import pyflink

    print("flink %s, parallelism 1, %s: %d events" % (pyflink.version.__version__, data, events))
    print("%-5s %9s %9s %14s" % ("query", "wall_s", "cpu_s", "events/cpu_s"))
    for case in cases:
        wall, cpu = run(case)
        print("%-5s %9.2f %9.2f %14.0f" % (os.path.basename(os.path.normpath(case)), wall, cpu,
                                          events / cpu if cpu else 0), flush=True)
    return 0


def explain(data, args):
    from golden import _env, read_query

    t_env = _env()
    declare(t_env, data)
    for case in case_dirs(args):
        print("== %s\n%s" % (case, t_env.explain_sql(read_query(case))))
    return 0


def main(argv):
    try:
        import pyflink  # noqa: F401
    except ImportError:
        print("pyflink is not installed for %s; run scripts/flink/setup.sh" % sys.executable,
              file=sys.stderr)
        return 2
    if len(argv) >= 3 and argv[1] == "canon":
        return canon(argv[2:])
    if len(argv) < 4 or argv[1] not in ("golden", "bench", "explain"):
        print(__doc__, file=sys.stderr)
        return 2
    data = argv[2]
    for t in TABLES:
        if not os.path.isfile(os.path.join(data, t + ".jsonl")):
            print("%s: no %s.jsonl (citybrain simulate --nexmark --out %s)" % (data, t, data),
                  file=sys.stderr)
            return 2
    return {"golden": golden, "bench": bench, "explain": explain}[argv[1]](data, argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
