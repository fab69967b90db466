-- title: Traffic accident with no medical call
-- severity: high
-- owner: city
-- location: cell
-- ack_within: 5m
-- description: A traffic accident reported by road sensors or cameras in an H3 cell (resolution
-- description: 8, about 0.7 km2) with no medical emergency call from that cell in the same
-- description: ten-minute window. Most injury crashes bring a medical call within minutes; when
-- description: none comes, nobody may have called an ambulance (a night crash, a hit-and-run, a
-- description: driver unable to call), so the centre should check by camera or send a unit. Fire,
-- description: rescue and hazmat calls do not count: they do not bring an ambulance. Same window
-- description: only: an accident at 08:09 and a call at 08:11 fall in different windows, so the
-- description: accident is still reported (a false alarm the operator clears quickly, rather
-- description: than a missed one).
SELECT L.window_start,
       L.window_end,
       L.cell,
       L.event_id AS accident_event_id,
       L.ts AS accident_ts,
       L.road_id,
       L.sensor_id
FROM (SELECT *, h3_cell(lat, lon, 8) AS cell
      FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
      WHERE kind = 'accident') L
WHERE NOT EXISTS (
  SELECT *
  FROM (SELECT *, h3_cell(lat, lon, 8) AS cell
        FROM TABLE(TUMBLE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
        WHERE service = 'medical') R
  WHERE L.window_start = R.window_start
    AND L.window_end = R.window_end
    AND L.cell = R.cell
)
