#!/usr/bin/env python3
"""Throughput of a one-minute tumbling aggregation per road in Apache Flink (local mini-cluster).

    python3 scripts/flink/bench.py FILE [--parallelism N] [--normalize] [--no-warmup]
    python3 scripts/flink/bench.py --generate N OUT      # write a synthetic traffic file

FILE is a traffic feed in JSON lines (docs/feeds.md). Flink's JSON format reads `ts` as
TIMESTAMP_LTZ(3) only from RFC 3339 strings in UTC with a 'Z' (e.g. "2026-03-02T08:00:00.000Z").
Files from `citybrain simulate` also hold integer milliseconds, "+08:00" offsets and a few
malformed records: pass --normalize to rewrite FILE first (in Python, *not* timed) into a
temporary file with every `ts` as "...Z" and malformed lines dropped.

The query (the same text citybrain runs):

    SELECT window_start, window_end, road_id, COUNT(*) AS readings,
           SUM(vehicle_count) AS vehicles, MAX(speed_kmh) AS max_speed_kmh
    FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
    GROUP BY window_start, window_end, road_id

into a `blackhole` sink, STREAMING mode, watermark `ts - INTERVAL '5' SECOND`, Flink's
default watermark interval (200 ms), parallelism 1 unless --parallelism.

Printed: events (non-blank lines of the file read), wall seconds of the job (submit to
finish), CPU seconds of the Java process tree during the job (user+system, from /proc), events
per wall second and per CPU second; and the JVM start-up wall/CPU separately. Before the
timed job the same job runs once over the first 20000 events (mini-cluster start-up, JIT
warm-up); --no-warmup skips that, so the timed job then includes ~10-15 s of fixed costs.
"""

import datetime as dt
import json
import os
import sys
import tempfile
import time

os.environ["TZ"] = "UTC"
time.tzset()

QUERY = """SELECT window_start, window_end, road_id, COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles, MAX(speed_kmh) AS max_speed_kmh
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, road_id"""

CLK = os.sysconf("SC_CLK_TCK")


def _children():
    """pid -> list of child pids, from /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def java_tree_cpu():
    """CPU seconds (utime+stime, plus waited-for children) of every java process below us."""
    kids = _children()
    total = 0.0
    stack = list(kids.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack.extend(kids.get(pid, []))
        try:
            with open("/proc/%d/stat" % pid) as f:
                s = f.read()
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm != "java":
            continue
        fields = s[s.rindex(")") + 2:].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += (utime + stime + cutime + cstime) / CLK
    return total


def _ts_z(v):
    """An RFC 3339 string or integer milliseconds -> "YYYY-MM-DDTHH:MM:SS.sssZ"; None if bad."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        t = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=v)
    elif isinstance(v, str):
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:
            return None
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    else:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def normalize(src, dst):
    kept = dropped = 0
    with open(src, encoding="utf-8", errors="replace") as fi, open(dst, "w", encoding="utf-8") as fo:
        for line in fi:
            if not line.strip():
                continue
            try:
                o = json.loads(line)
                ts = _ts_z(o.get("ts")) if isinstance(o, dict) else None
            except ValueError:
                ts = None
            if ts is None:
                dropped += 1
                continue
            o["ts"] = ts
            fo.write(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n")
            kept += 1
    return kept, dropped


def generate(n, out, seed=7):
    import random

    rng = random.Random(seed)
    t0 = int(dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            ms = t0 + i * 5 + rng.randint(-2000, 0)  # 200 events/s, up to 2 s out of order
            road = "R%03d" % rng.randint(1, 200)
            f.write(json.dumps({
                "event_id": "t-%09d" % i, "ts": _ts_z(ms),
                "lat": round(30.2 + rng.random() / 10, 6), "lon": round(120.1 + rng.random() / 10, 6),
                "sensor_id": "S" + road[1:], "road_id": road,
                "speed_kmh": round(rng.uniform(5, 90), 1), "vehicle_count": rng.randint(0, 40),
                "occupancy": round(rng.random(), 3), "plate": None, "kind": "flow",
            }, separators=(",", ":")) + "\n")


def main(argv):
    args = argv[1:]
    if len(args) == 3 and args[0] == "--generate":
        generate(int(args[1]), args[2])
        print("wrote %s events to %s" % (args[1], args[2]))
        return 0
    par = 1
    norm = False
    warmup = True
    files = []
    i = 0
    while i < len(args):
        if args[i] == "--parallelism":
            par = int(args[i + 1])
            i += 2
        elif args[i] == "--no-warmup":
            warmup = False
            i += 1
        elif args[i] == "--normalize":
            norm = True
            i += 1
        elif args[i].startswith("--"):
            print(__doc__, file=sys.stderr)
            return 2
        else:
            files.append(args[i])
            i += 1
    if len(files) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = os.path.abspath(files[0])
    tmp = None
    if norm:
        fd, tmp = tempfile.mkstemp(suffix=".jsonl", prefix="flink-bench-")
        os.close(fd)
        t = time.time()
        kept, dropped = normalize(path, tmp)
        print("normalized %s: %d events kept, %d malformed dropped (%.1fs, not timed)"
              % (path, kept, dropped, time.time() - t))
        path = tmp
    with open(path, "rb") as f:
        events = sum(1 for line in f if line.strip())

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from golden import COMMON, FEEDS  # same schema as the conformance cases

    w0 = time.time()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", str(par))
    conf.set("table.local-time-zone", "UTC")
    cols = ",\n  ".join("`%s` %s" % c for c in COMMON + FEEDS["traffic"])
    def declare(table, file):
        t_env.execute_sql("DROP TEMPORARY TABLE IF EXISTS `%s`" % table)
        t_env.execute_sql(
            "CREATE TEMPORARY TABLE `%s` (\n  %s,\n  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND\n)"
            " WITH ('connector' = 'filesystem', 'path' = 'file://%s', 'format' = 'json',"
            " 'json.timestamp-format.standard' = 'ISO-8601', 'json.fail-on-missing-field' = 'false',"
            " 'json.ignore-parse-errors' = 'true')" % (table, cols, file))

    t_env.execute_sql(
        "CREATE TEMPORARY TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3),"
        " road_id STRING, readings BIGINT, vehicles BIGINT, max_speed_kmh DOUBLE)"
        " WITH ('connector' = 'blackhole')")
    startup_wall = time.time() - w0
    startup_cpu = java_tree_cpu()
    if warmup:
        # Same job over the first 20000 events: starts the mini-cluster and warms the JIT, so
        # the timed job measures processing rather than fixed start-up costs.
        fd, head = tempfile.mkstemp(suffix=".jsonl", prefix="flink-bench-warmup-")
        with os.fdopen(fd, "wb") as fo, open(path, "rb") as fi:
            for k, line in enumerate(fi):
                if k >= 20000:
                    break
                fo.write(line)
        declare("traffic", head)
        w1, c1 = time.time(), java_tree_cpu()
        t_env.execute_sql("INSERT INTO sink " + QUERY).wait()
        warm = (time.time() - w1, java_tree_cpu() - c1)
        os.remove(head)
    declare("traffic", path)

    c0 = java_tree_cpu()
    t0 = time.time()
    t_env.execute_sql("INSERT INTO sink " + QUERY).wait()
    wall = time.time() - t0
    cpu = java_tree_cpu() - c0
    if tmp:
        os.remove(tmp)

    import pyflink

    print("flink %s, parallelism %d, file %s" % (pyflink.version.__version__, par, files[0]))
    print("events            %d" % events)
    print("wall_s            %.3f" % wall)
    print("cpu_s             %.3f   (java process tree, user+system, during the job)" % cpu)
    print("events_per_s      %.0f" % (events / wall if wall else 0))
    print("events_per_cpu_s  %.0f" % (events / cpu if cpu else 0))
    print("startup           %.1f s wall, %.1f s cpu (JVM + planner, not included above)"
          % (startup_wall, startup_cpu))
    if warmup:
        print("warm-up job       %.1f s wall, %.1f s cpu (first 20000 events, not included above)"
              % warm)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
