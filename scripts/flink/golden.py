#!/usr/bin/env python3
"""Run a citybrain conformance case in Apache Flink and write its golden output.

    python3 scripts/flink/golden.py rules/tests/flink/<case>      # one case
    python3 scripts/flink/golden.py --all                        # every case under rules/tests/flink
    python3 scripts/flink/golden.py --print rules/tests/flink/<case>   # print, don't write
    python3 scripts/flink/golden.py --explain rules/tests/flink/<case> # Flink's plan

A case folder holds `query.sql` (one SELECT, no trailing semicolon needed) and one
`<feed>.jsonl` per feed it reads (traffic, police, emergency, market; docs/feeds.md). Feeds
without a file are declared over an empty file, so a query may name any of the four.

Flink setup (kept identical for every case so the goldens are comparable):
  * local mini-cluster, STREAMING execution mode (window TVFs get their streaming, event-time
    semantics even though the files are bounded), parallelism 1;
  * session time zone UTC (the JVM and this process also run with TZ=UTC);
  * each feed a `filesystem` table, format `json` with ISO-8601 timestamps, all columns of the
    published standard, `ts TIMESTAMP_LTZ(3)` and `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND`;
  * the watermark is emitted after every event that raises it (pipeline.auto-watermark-interval
    = 0; Flink's table watermark operator otherwise emits only when the watermark rose by more
    than the interval, in event-time ms), so lateness is decided event by event as in citybrain;
  * at the end of a bounded file Flink emits the final watermark, so every window closes.

Output `flink_expected.jsonl`: one JSON object per result row, keys = the query's output
column names in select order; TIMESTAMP / TIMESTAMP_LTZ values as "YYYY-MM-DDTHH:MM:SS.sssZ"
(UTC, milliseconds); integers as JSON integers, DOUBLE as JSON numbers, DECIMAL as a JSON
number; NULL as null. Lines are sorted lexicographically (byte order of the UTF-8 line).
If Flink produces a changelog (updates/retractions) the final table is materialised and a
warning is printed: the window queries of the cases are all append-only.
"""

import datetime as _dt
import decimal
import json
import os
import sys
import time

os.environ["TZ"] = "UTC"
if hasattr(time, "tzset"):
    time.tzset()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CASES = os.path.join(REPO, "rules", "tests", "flink")

COMMON = [("event_id", "STRING"), ("ts", "TIMESTAMP_LTZ(3)"), ("lat", "DOUBLE"), ("lon", "DOUBLE")]
FEEDS = {
    "traffic": [
        ("sensor_id", "STRING"), ("road_id", "STRING"), ("speed_kmh", "DOUBLE"),
        ("vehicle_count", "BIGINT"), ("occupancy", "DOUBLE"), ("plate", "STRING"),
        ("kind", "STRING"),
    ],
    "police": [
        ("incident_id", "STRING"), ("category", "STRING"), ("priority", "BIGINT"),
        ("reporter_phone", "STRING"),
    ],
    "emergency": [
        ("call_id", "STRING"), ("service", "STRING"), ("severity", "BIGINT"),
        ("caller_phone", "STRING"), ("caller_id_no", "STRING"), ("response_s", "DOUBLE"),
    ],
    "market": [
        ("merchant_id", "STRING"), ("merchant_name", "STRING"), ("category", "STRING"),
        ("kind", "STRING"), ("complainant_phone", "STRING"), ("amount_cny", "DOUBLE"),
        ("result", "STRING"),
    ],
}
OUT_OF_ORDERNESS = "5"  # seconds, citybrain's default --out-of-orderness


def _ddl(feed, path):
    cols = ",\n  ".join("`%s` %s" % c for c in COMMON + FEEDS[feed])
    return (
        "CREATE TEMPORARY TABLE `%s` (\n  %s,\n"
        "  WATERMARK FOR ts AS ts - INTERVAL '%s' SECOND\n) WITH (\n"
        "  'connector' = 'filesystem',\n  'path' = 'file://%s',\n  'format' = 'json',\n"
        "  'json.timestamp-format.standard' = 'ISO-8601',\n"
        "  'json.fail-on-missing-field' = 'false',\n"
        "  'json.ignore-parse-errors' = 'false'\n)"
        % (feed, cols, OUT_OF_ORDERNESS, path)
    )


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        from pyflink.table import EnvironmentSettings, TableEnvironment

        settings = EnvironmentSettings.in_streaming_mode()
        t_env = TableEnvironment.create(settings)
        conf = t_env.get_config()
        conf.set("parallelism.default", "1")
        conf.set("table.local-time-zone", "UTC")
        conf.set("table.exec.resource.default-parallelism", "1")
        # Emit the watermark after every event that raises it (like citybrain), not only when
        # it rose by more than the interval: Flink's table WatermarkAssignerOperator emits when
        # `currentWatermark - lastEmitted > pipeline.auto-watermark-interval` (in event-time ms).
        conf.set("pipeline.auto-watermark-interval", os.environ.get("GOLDEN_WM_INTERVAL", "0 ms"))
        _ENV = t_env
    return _ENV


def _fmt_ms(ms):
    v = _dt.datetime(1970, 1, 1) + _dt.timedelta(milliseconds=ms)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (v.microsecond // 1000)


def _jvalue(v):
    """A Java field value (as py4j hands it over) to its JSON value."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("non-finite float %r has no JSON form" % v)
        return v
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() and v.as_tuple().exponent >= 0 else float(v)
    cls = v.getClass().getName()
    if cls == "java.time.Instant":  # TIMESTAMP_LTZ
        return _fmt_ms(v.toEpochMilli())
    if cls == "java.time.LocalDateTime":  # TIMESTAMP (wall clock; session zone is UTC)
        from pyflink.java_gateway import get_gateway

        utc = get_gateway().jvm.java.time.ZoneOffset.UTC
        return _fmt_ms(v.toInstant(utc).toEpochMilli())
    if cls in ("java.math.BigDecimal",):
        return _jvalue(decimal.Decimal(v.toPlainString()))
    if cls in ("java.time.LocalDate",):
        return v.toString()
    raise TypeError("unsupported result type %s (%s)" % (cls, v.toString()))


def read_query(case_dir):
    with open(os.path.join(case_dir, "query.sql"), encoding="utf-8") as f:
        text = f.read()
    # Drop comment-only lines (citybrain's `-- key: value` header) and a trailing semicolon.
    body = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--")).strip()
    if body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def declare_feeds(case_dir):
    """(Re)declare the four feed tables over the case's files; returns a cleanup function."""
    t_env = _env()
    empty = os.path.join(case_dir, ".empty.jsonl")
    made_empty = False
    for feed in FEEDS:
        path = os.path.join(case_dir, feed + ".jsonl")
        if not os.path.exists(path):
            if not made_empty:
                open(empty, "w").close()
                made_empty = True
            path = empty
        t_env.execute_sql("DROP TEMPORARY TABLE IF EXISTS `%s`" % feed)
        t_env.execute_sql(_ddl(feed, path))

    def cleanup():
        if made_empty:
            os.remove(empty)

    return cleanup


def explain_case(case_dir):
    case_dir = os.path.abspath(case_dir)
    cleanup = declare_feeds(case_dir)
    try:
        return _env().explain_sql(read_query(case_dir))
    finally:
        cleanup()


def run_case(case_dir):
    case_dir = os.path.abspath(case_dir)
    t_env = _env()
    cleanup = declare_feeds(case_dir)
    try:
        result = t_env.execute_sql(read_query(case_dir))
        names = result.get_resolved_schema().get_column_names()
        if len(set(names)) != len(names):
            raise ValueError("duplicate output column names %r" % (names,))
        live = {}  # line -> multiplicity (materialised changelog)
        changelog = False
        # Rows are read on the Java side: PyFlink's own Row pickling cannot convert
        # java.time.Instant (TIMESTAMP_LTZ), so each field is converted here by its class.
        it = result._j_table_result.collect()
        try:
            while it.hasNext():
                jrow = it.next()
                kind = jrow.getKind().toString()
                values = [_jvalue(jrow.getField(i)) for i in range(jrow.getArity())]
                line = json.dumps(dict(zip(names, values)), ensure_ascii=False,
                                  separators=(",", ":"))
                if kind in ("INSERT", "UPDATE_AFTER"):
                    if kind != "INSERT":
                        changelog = True
                    live[line] = live.get(line, 0) + 1
                else:
                    changelog = True
                    live[line] = live.get(line, 0) - 1
                    if live[line] == 0:
                        del live[line]
        finally:
            it.close()
        if changelog:
            print("warning: %s: Flink produced a changelog (not append-only); wrote the "
                  "materialised final rows" % case_dir, file=sys.stderr)
        lines = []
        for line, n in live.items():
            if n < 0:
                raise RuntimeError("retraction of a row never inserted: %s" % line)
            lines.extend([line] * n)
        lines.sort(key=lambda s: s.encode("utf-8"))
        return lines
    finally:
        cleanup()


def main(argv):
    try:
        import pyflink  # noqa: F401
    except ImportError:
        print("pyflink is not installed for %s; see scripts/flink/README.md "
              "(pip install apache-flink==2.3.0)" % sys.executable, file=sys.stderr)
        return 2
    args = argv[1:]
    show = explain = False
    if args and args[0] == "--print":
        show = True
        args = args[1:]
    elif args and args[0] == "--explain":
        explain = True
        args = args[1:]
    if args == ["--all"]:
        cases = sorted(
            os.path.join(CASES, d) for d in os.listdir(CASES)
            if os.path.isfile(os.path.join(CASES, d, "query.sql"))
        )
    elif args and not any(a.startswith("--") for a in args):
        cases = args
    else:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for case in cases:
        t0 = time.time()
        if explain:
            print("== %s\n%s" % (case, explain_case(case)))
            continue
        try:
            lines = run_case(case)
        except Exception as e:  # report and go on with the other cases
            failed += 1
            print("FAILED %s: %s" % (case, e), file=sys.stderr)
            continue
        if show:
            sys.stdout.write("".join(l + "\n" for l in lines))
        else:
            with open(os.path.join(case, "flink_expected.jsonl"), "w", encoding="utf-8") as f:
                f.write("".join(l + "\n" for l in lines))
        print("%s: %d row(s) in %.1fs" % (os.path.relpath(os.path.abspath(case), REPO),
                                          len(lines), time.time() - t0), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
