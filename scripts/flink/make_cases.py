#!/usr/bin/env python3
"""Write the input files of the Flink conformance cases (rules/tests/flink/<case>/<feed>.jsonl).

    python3 scripts/flink/make_cases.py          # rewrite every case's inputs (deterministic)

Only inputs are generated here; `query.sql` and `README.md` are written by hand and the
expected output (`flink_expected.jsonl`) comes from Flink via golden.py. The generator is
seeded, so rerunning it gives byte-identical files.

Every feed file is checked before it is written: each event's `ts` is more than 5 s after
the largest `ts` before it in the file minus 5 s (disorder strictly below citybrain's
default 5 s bound), so no event is late in citybrain or in Flink.
"""

import datetime as dt
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "rules", "tests", "flink")
T0 = dt.datetime(2026, 3, 2, 8, 0, 0)
BOUND_MS = 5000

TRAFFIC = ["sensor_id", "road_id", "speed_kmh", "vehicle_count", "occupancy", "plate", "kind"]
POLICE = ["incident_id", "category", "priority", "reporter_phone"]
EMERGENCY = ["call_id", "service", "severity", "caller_phone", "caller_id_no", "response_s"]


def at(minutes=0, seconds=0.0):
    """T0 + offset, as milliseconds since T0."""
    return int(round(minutes * 60000 + seconds * 1000))


def ts_str(ms):
    v = T0 + dt.timedelta(milliseconds=ms)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (v.microsecond // 1000)


def jitter(events, rng, max_ms=3500):
    """Reorder events as a source with bounded delay would deliver them (stable, seeded)."""
    keyed = [(e.pop("_arrive") if "_arrive" in e else e["_ms"] + rng.randint(0, max_ms), i, e)
             for i, e in enumerate(events)]
    return [e for _, _, e in sorted(keyed)]


def check_and_write(case, feed, events, fields, allow_late=False):
    folder = os.path.join(CASES, case)
    os.makedirs(folder, exist_ok=True)
    seen = None
    ids = set()
    lines = []
    for e in events:
        if not allow_late and seen is not None and not e["_ms"] > seen - BOUND_MS:
            raise SystemExit("%s/%s: %s is late (max seen %s)" % (case, feed, e["event_id"], ts_str(seen)))
        seen = e["_ms"] if seen is None else max(seen, e["_ms"])
        if e["event_id"] in ids:
            raise SystemExit("%s/%s: duplicate event_id %s" % (case, feed, e["event_id"]))
        ids.add(e["event_id"])
        obj = {"event_id": e["event_id"], "ts": ts_str(e["_ms"]), "lat": e["lat"], "lon": e["lon"]}
        for f in fields:
            obj[f] = e.get(f)
        lines.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    with open(os.path.join(folder, feed + ".jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(l + "\n" for l in lines))


def traffic_event(eid, ms, road, rng, **kw):
    e = {
        "_ms": ms, "event_id": eid,
        "lat": round(30.25 + rng.randint(0, 999) / 10000, 4),
        "lon": round(120.15 + rng.randint(0, 999) / 10000, 4),
        "sensor_id": None if road is None else "S-" + road,
        "road_id": road,
        "speed_kmh": rng.randint(100, 800) / 10,
        "vehicle_count": rng.randint(0, 30),
        "occupancy": rng.randint(0, 100) / 100,
        "plate": None,
        "kind": "flow",
    }
    e.update(kw)
    return e


def police_event(eid, ms, category, phone, rng, **kw):
    e = {
        "_ms": ms, "event_id": eid,
        "lat": round(30.25 + rng.randint(0, 999) / 10000, 4),
        "lon": round(120.15 + rng.randint(0, 999) / 10000, 4),
        "incident_id": "I-" + eid,
        "category": category,
        "priority": rng.randint(1, 4),
        "reporter_phone": phone,
    }
    e.update(kw)
    return e


def emergency_event(eid, ms, service, phone, rng, **kw):
    e = {
        "_ms": ms, "event_id": eid,
        "lat": round(30.25 + rng.randint(0, 999) / 10000, 4),
        "lon": round(120.15 + rng.randint(0, 999) / 10000, 4),
        "call_id": "C-" + eid,
        "service": service,
        "severity": rng.randint(1, 5),
        "caller_phone": phone,
        "caller_id_no": None,
        "response_s": rng.randint(60, 900),
    }
    e.update(kw)
    return e


# --------------------------------------------------------------------------- tumble
def tumble():
    rng = random.Random(101)
    ev = []
    n = 0
    for road, offset in (("R001", 0), ("R002", 13), ("R003", 29)):
        for m in range(30):
            n += 1
            ev.append(traffic_event("t-%03d" % n, at(m, offset + rng.randint(0, 20)), road, rng))
    # R004 reports only in 08:10-08:15: no row for it in other windows.
    for s in (10, 70, 130, 190):
        n += 1
        ev.append(traffic_event("t-%03d" % n, at(10, s), "R004", rng))
    # Window edges: 08:04:59.999 belongs to [08:00,08:05), 08:05:00.000 to [08:05,08:10).
    ev.append(traffic_event("t-edge-1", at(4, 59.999), "R001", rng, vehicle_count=100))
    ev.append(traffic_event("t-edge-2", at(5, 0), "R001", rng, vehicle_count=200))
    # Unknown values: NULL vehicle_count (ignored by SUM, counted by COUNT(*)), NULL road_id
    # (its own group), NULL speed (ignored by MAX).
    ev.append(traffic_event("t-null-vc", at(7, 30), "R002", rng, vehicle_count=None))
    ev.append(traffic_event("t-null-road-1", at(12, 0), None, rng, vehicle_count=3))
    ev.append(traffic_event("t-null-road-2", at(13, 0), None, rng, vehicle_count=4, speed_kmh=None))
    ev.append(traffic_event("t-acc", at(21, 0), "R003", rng, kind="accident", speed_kmh=5.0))
    # An event of [08:10,08:15) delivered right after one of [08:15,08:20): in bound (3.5 s).
    ev.append(traffic_event("t-ooo-a", at(15, 1.5), "R002", rng, vehicle_count=7,
                            _arrive=at(15, 1.5)))
    ev.append(traffic_event("t-ooo-b", at(14, 58), "R002", rng, vehicle_count=9,
                            _arrive=at(15, 1.5) + 1))
    ev = jitter(ev, rng)
    # Flush: one reading an hour later closes every window (and is a window of its own).
    ev.append(traffic_event("t-end", at(90, 0), "R999", rng, vehicle_count=1))
    check_and_write("tumble", "traffic", ev, TRAFFIC)


# --------------------------------------------------------------------------- hop
def hop():
    rng = random.Random(202)
    ev = []
    n = 0
    for road, step, offset in (("R001", 45, 0), ("R002", 70, 20)):
        s = offset
        while s < 15 * 60:
            n += 1
            ev.append(traffic_event("t-%03d" % n, at(0, s), road, rng))
            s += step + rng.randint(-10, 10)
    # One isolated reading: it is in exactly 5 windows, [08:06,08:11) ... [08:10,08:15).
    ev.append(traffic_event("t-lonely", at(10, 30), "R003", rng, vehicle_count=5))
    # A reading exactly on a slide boundary (08:07:00.000): windows [08:03,08:08) .. [08:07,08:12).
    ev.append(traffic_event("t-edge", at(7, 0), "R003", rng, vehicle_count=11))
    ev = jitter(ev, rng)
    ev.append(traffic_event("t-end", at(60, 0), "R999", rng, vehicle_count=1))
    check_and_write("hop", "traffic", ev, TRAFFIC)


# --------------------------------------------------------------------------- cumulate
def cumulate():
    rng = random.Random(303)
    ev = []
    n = 0
    # R001 reads all the time (08:00-08:20).
    for m in range(20):
        for half in (0, 30):
            n += 1
            ev.append(traffic_event("t-%03d" % n, at(m, half + rng.randint(0, 25)), "R001", rng))
    # R002 reads only in 08:00-08:03 and again 08:13-08:14: its cumulative windows
    # [08:00,08:04) ... [08:00,08:10) repeat the same totals without new events, and in the
    # second 10-minute window its first step [08:10,08:12) has no row.
    for s in (5, 50, 100, 170):
        n += 1
        ev.append(traffic_event("t-%03d" % n, at(0, s), "R002", rng))
    for s in (785, 830):
        n += 1
        ev.append(traffic_event("t-%03d" % n, at(0, s), "R002", rng))
    # Step edge: 08:01:59.999 is in every step window from [08:00,08:02); 08:02:00.000 is not
    # in [08:00,08:02) but in [08:00,08:04) and later.
    ev.append(traffic_event("t-edge-1", at(1, 59.999), "R003", rng, vehicle_count=10))
    ev.append(traffic_event("t-edge-2", at(2, 0), "R003", rng, vehicle_count=20))
    ev = jitter(ev, rng)
    ev.append(traffic_event("t-end", at(60, 0), "R999", rng, vehicle_count=1))
    check_and_write("cumulate", "traffic", ev, TRAFFIC)


# --------------------------------------------------------------------------- session
def session():
    rng = random.Random(404)
    plan = [
        # theft: 08:00, 08:03, 08:07:30 chain into one session [08:00, 08:12:30).
        ("p-theft-1", at(0, 0), "theft"), ("p-theft-2", at(3, 0), "theft"),
        ("p-theft-3", at(7, 30), "theft"),
        # theft alone at 08:20 -> [08:20, 08:25).
        ("p-theft-4", at(20, 0), "theft"),
        # theft 08:30 and 08:34:59.999: gap just under 5 min -> one session [08:30, 08:39:59.999).
        ("p-theft-5", at(30, 0), "theft"), ("p-theft-6", at(34, 59.999), "theft"),
        # theft 08:45 and 08:50:00.000: gap exactly 5 min (see README for Flink's answer).
        ("p-theft-7", at(45, 0), "theft"), ("p-theft-8", at(50, 0), "theft"),
        # fight: 08:10 and 08:15:02 are two sessions until 08:14:59 arrives (out of order by
        # 3 s, after 08:15:02) and bridges them into one session [08:10, 08:20:02).
        ("p-fight-1", at(10, 0), "fight"), ("p-fight-2", at(15, 2), "fight"),
        ("p-fight-3", at(14, 59), "fight"),
        # fraud: a single-event session at 08:40 -> [08:40, 08:45).
        ("p-fraud-1", at(40, 0), "fraud"),
        # fraud interleaved with another category in time: sessions are per category.
        ("p-fraud-2", at(3, 30), "fraud"), ("p-fraud-3", at(6, 0), "fraud"),
        # unknown category: NULL is a partition of its own.
        ("p-null-1", at(12, 0), None), ("p-null-2", at(14, 0), None),
    ]
    ev = [police_event(eid, ms, cat, None, rng) for eid, ms, cat in plan]
    # keep the hand-made delivery order of the bridging event, otherwise order by time
    bridge = [e for e in ev if e["event_id"] == "p-fight-3"][0]
    rest = sorted((e for e in ev if e is not bridge), key=lambda e: e["_ms"])
    i = [k for k, e in enumerate(rest) if e["event_id"] == "p-fight-2"][0]
    ev = rest[: i + 1] + [bridge] + rest[i + 1:]
    ev.append(police_event("p-end", at(120, 0), "end", None, rng))
    check_and_write("session", "police", ev, POLICE)


# --------------------------------------------------------------------------- topn
def topn():
    rng = random.Random(505)
    # readings per road per 10-minute window; all counts in a window distinct (no ties).
    counts = [
        {"R001": 9, "R002": 7, "R003": 5, "R004": 4, "R005": 2, "R006": 1},
        {"R001": 3, "R002": 8, "R003": 1, "R004": 6, "R005": 10, "R006": 4},
        {"R004": 5, "R006": 2},  # only two roads: the window has two rows
    ]
    ev = []
    n = 0
    for w, per_road in enumerate(counts):
        for road, c in per_road.items():
            for k in range(c):
                n += 1
                s = rng.randint(0, 599 * 1000) / 1000
                ev.append(traffic_event("t-%03d" % n, at(10 * w, s), road, rng))
    ev = jitter(sorted(ev, key=lambda e: e["_ms"]), rng)
    ev.append(traffic_event("t-end", at(90, 0), "R999", rng))
    check_and_write("topn", "traffic", ev, TRAFFIC)


# --------------------------------------------------------------------------- late
def late():
    """Late events, one-minute tumbling windows. Unlike every other case, events here ARE late.

    vehicle_count values are powers of two, so a window's SUM tells exactly which events it
    counted. The file is written without the lateness check (it is the point of the case).
    """
    rng = random.Random(707)
    plan = [
        ("t-01", at(0, 10), "R001", 1),
        ("t-02", at(0, 30), "R001", 2),
        ("t-03", at(1, 4.999), "R001", 4),     # watermark 08:00:59.999 = window_end - 1 ms
        ("t-04", at(0, 59.999), "R001", 8),    # ts = window_end - 1 ms, watermark = ts
        ("t-05", at(1, 5), "R001", 16),        # watermark 08:01:00.000 = window_end
        ("t-06", at(0, 50), "R001", 32),       # 10 s behind the watermark
        ("t-07", at(0, 20), "R003", 64),       # late for a window with no other R003 event
        ("t-08", at(1, 30), "R002", 128),
        ("t-09", at(2, 10), "R002", 256),      # watermark 08:02:05
        ("t-10", at(2, 0), "R002", 512),       # ts = window_start of [08:02,08:03): on time
        ("t-11", at(1, 59.999), "R002", 1024), # [08:01,08:02) ended at watermark 08:02:05: late
        ("t-12", at(2, 4.999), "R001", 2048),  # behind the watermark (08:02:05), window still open
    ]
    ev = [traffic_event(eid, ms, road, rng, vehicle_count=vc) for eid, ms, road, vc in plan]
    ev.append(traffic_event("t-end", at(60, 0), "R999", rng, vehicle_count=0))
    check_and_write("late", "traffic", ev, TRAFFIC, allow_late=True)


# --------------------------------------------------------------------------- late_session
def late_session():
    """Events behind the watermark in session windows: kept when their session is still open.

    Events ARE late here (in the sense of ts < watermark); written without the check.
    """
    rng = random.Random(909)
    plan = [
        ("p-01", at(0, 0), "theft"),      # theft session [08:00, 08:05)
        ("p-02", at(4, 0), "theft"),      # extends it to [08:00, 08:09)
        ("p-03", at(8, 0), "fight"),      # raises the watermark to 08:07:55
        ("p-04", at(1, 0), "theft"),      # 7 min behind; own window [08:01, 08:06) is closed,
                                          # but it falls into the open theft session
        ("p-05", at(-10, 0), "theft"),    # 07:50: own window [07:50, 07:55) touches nothing open
        ("p-06", at(-4, 0), "theft"),     # 07:56: own window [07:56, 08:01) overlaps the open
                                          # theft session [08:00, 08:09)
        ("p-07", at(3, 0), "fraud"),      # no fraud session yet; own window [08:03, 08:08) ends
                                          # after the watermark 08:07:55
        ("p-08", at(2, 0), "fraud"),      # own window [08:02, 08:07) closed, overlaps p-07's
        ("p-09", at(2, 30), "fight"),     # own window [08:02:30, 08:07:30) closed, fight
                                          # session [08:08, 08:13) does not touch it
        ("p-10", at(9, 10), "fight"),     # watermark 08:09:05: theft session [..., 08:09) fires
        ("p-11", at(3, 30), "theft"),     # the theft session is emitted: late
    ]
    ev = [police_event(eid, ms, cat, None, rng) for eid, ms, cat in plan]
    ev.append(police_event("p-end", at(120, 0), "end", None, rng))
    check_and_write("late_session", "police", ev, POLICE, allow_late=True)


# --------------------------------------------------------------------------- avg_integer
def avg_integer():
    rng = random.Random(808)
    plan = [
        # window [08:00,08:05): R001 1+2 -> AVG 1.5; R002 2+2+3 -> 2.333..; R003 7 -> 7
        ("t-01", at(0, 10), "R001", 1), ("t-02", at(1, 0), "R001", 2),
        ("t-03", at(1, 30), "R002", 2), ("t-04", at(2, 0), "R002", 2), ("t-05", at(3, 0), "R002", 3),
        ("t-06", at(4, 0), "R003", 7),
        # window [08:05,08:10): R001 10 and NULL -> AVG over the non-null value only
        ("t-07", at(5, 10), "R001", 10), ("t-08", at(6, 0), "R001", None),
        # R002 only NULLs -> AVG NULL, SUM NULL, COUNT(*) 2, COUNT(vehicle_count) 0
        ("t-09", at(6, 30), "R002", None), ("t-10", at(7, 0), "R002", None),
        # R003 0, 1 -> 0.5
        ("t-11", at(8, 0), "R003", 0), ("t-12", at(9, 0), "R003", 1),
    ]
    ev = [traffic_event(eid, ms, road, rng, vehicle_count=vc) for eid, ms, road, vc in plan]
    ev.append(traffic_event("t-end", at(60, 0), "R999", rng, vehicle_count=5))
    check_and_write("avg_integer", "traffic", ev, TRAFFIC)


# --------------------------------------------------------------------------- joins
PH = {k: "1380000%04d" % i for i, k in enumerate("ABCDEFGHIJKLMN", start=1)}


def join_feeds():
    """Police incidents and emergency calls; the join key is the reporter's / caller's phone.

    Shared by join_inner, join_left, join_semi, join_anti and interval_join.
    """
    rng = random.Random(606)
    police = [
        # A: incident 08:01, call 08:05 (same 10-min window, 4 min later).
        police_event("p-A", at(1), "theft", PH["A"], rng),
        # B: incident 08:08, call 08:11 (next window; 3 min later).
        police_event("p-B", at(8), "fight", PH["B"], rng),
        # C: incident 08:09:59.999, call 08:10:00.000 (adjacent windows; 1 ms later).
        police_event("p-C", at(9, 59.999), "fraud", PH["C"], rng),
        # D: one incident, two calls in the same window.
        police_event("p-D", at(12), "assault", PH["D"], rng),
        # E: two incidents, one call, same window.
        police_event("p-E1", at(21), "theft", PH["E"], rng),
        police_event("p-E2", at(24), "theft", PH["E"], rng),
        # F: call 1 ms before the incident (same window).
        police_event("p-F", at(32), "disturbance", PH["F"], rng),
        # G: call exactly 10 min after the incident (08:30 -> 08:40).
        police_event("p-G", at(30), "fraud", PH["G"], rng),
        # H: call 10 min + 1 ms after the incident.
        police_event("p-H", at(31), "theft", PH["H"], rng),
        # I: call at the very same millisecond as the incident.
        police_event("p-I", at(35), "assault", PH["I"], rng),
        # J: incident with no call at all.
        police_event("p-J", at(15), "theft", PH["J"], rng),
        # unknown phone: never equal to anything (not even another NULL).
        police_event("p-null", at(16), "theft", None, rng),
    ]
    emergency = [
        emergency_event("e-A", at(5), "medical", PH["A"], rng),
        emergency_event("e-B", at(11), "medical", PH["B"], rng),
        emergency_event("e-C", at(10, 0), "rescue", PH["C"], rng),
        emergency_event("e-D1", at(13), "medical", PH["D"], rng),
        emergency_event("e-D2", at(17), "fire", PH["D"], rng),
        emergency_event("e-E", at(25), "medical", PH["E"], rng),
        emergency_event("e-F", at(31, 59.999), "rescue", PH["F"], rng),
        emergency_event("e-G", at(40), "medical", PH["G"], rng),
        emergency_event("e-H", at(41, 0.001), "fire", PH["H"], rng),
        emergency_event("e-I", at(35), "medical", PH["I"], rng),
        # K: call with no incident; and a call with an unknown phone.
        emergency_event("e-K", at(18), "hazmat", PH["K"], rng),
        emergency_event("e-null", at(16, 30), "medical", None, rng),
    ]
    # Background: calls and incidents from a small pool of other phones, so that windows
    # hold several rows and keys repeat.
    pool = [PH[k] for k in "LMN"]
    for i in range(14):
        police.append(police_event("p-bg%02d" % i, at(0, rng.randint(0, 44 * 60)),
                                   rng.choice(["theft", "fraud", "fight"]), rng.choice(pool), rng))
        emergency.append(emergency_event("e-bg%02d" % i, at(0, rng.randint(0, 44 * 60)),
                                         rng.choice(["medical", "fire"]), rng.choice(pool), rng))
    police = jitter(sorted(police, key=lambda e: e["_ms"]), rng)
    emergency = jitter(sorted(emergency, key=lambda e: e["_ms"]), rng)
    police.append(police_event("p-end", at(120), "end", "19900000000", rng))
    emergency.append(emergency_event("e-end", at(120), "end", "19900000001", rng))
    for case in ("join_inner", "join_left", "join_full", "join_semi", "join_anti",
                 "interval_join"):
        check_and_write(case, "police", police, POLICE)
        check_and_write(case, "emergency", emergency, EMERGENCY)


if __name__ == "__main__":
    tumble()
    hop()
    cumulate()
    session()
    topn()
    late()
    late_session()
    avg_integer()
    join_feeds()
    print("inputs written under", CASES)
