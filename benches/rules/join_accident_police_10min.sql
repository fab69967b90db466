-- title: Traffic accident with police reports from its cell (benchmark: a window join)
-- severity: low
-- description: Two feeds joined on a ten-minute tumbling window and an H3 cell (resolution 8):
-- description: each accident reported by road sensors, paired with every police report from the
-- description: same cell and window. Every traffic reading is held in its window (the filter on
-- description: kind runs when the window closes), so the work grows with the dense feed.
SELECT A.window_start,
       A.window_end,
       A.cell,
       A.event_id AS accident_event_id,
       P.event_id AS police_event_id,
       A.road_id,
       P.category
FROM (SELECT *, h3_cell(lat, lon, 8) AS cell
      FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
      WHERE kind = 'accident') A
JOIN (SELECT *, h3_cell(lat, lon, 8) AS cell
      FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '10' MINUTES))) P
  ON A.window_start = P.window_start
 AND A.window_end = P.window_end
 AND A.cell = P.cell
