-- title: Crowd risk: traffic, police and emergency all busy in one cell
-- severity: critical
-- owner: city
-- location: cell
-- description: In the same H3 cell (resolution 8, about 0.7 km2) and the same ten minutes, road
-- description: sensors report an accident, police get incident reports and emergency services get
-- description: calls, with at least four police reports and calls together. One ordinary crash
-- description: already gives one accident, one police report and one or two calls (two or three
-- description: together), so that alone does not fire; four or more on top of an accident mean a
-- description: crowd in trouble (a crush, a brawl spilling onto the road) that each department
-- description: sees only a part of. Reads the views city/signals/*.
SELECT T.window_start,
       T.window_end,
       T.cell,
       T.accidents,
       P.incidents,
       P.violent,
       P.most_urgent_priority,
       E.calls,
       E.severe_calls
FROM (SELECT * FROM TABLE(TUMBLE(TABLE traffic_signals, DESCRIPTOR(rowtime), INTERVAL '10' MINUTES))) T
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE police_signals, DESCRIPTOR(rowtime), INTERVAL '10' MINUTES))) P
  ON T.window_start = P.window_start AND T.window_end = P.window_end AND T.cell = P.cell
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE emergency_signals, DESCRIPTOR(rowtime), INTERVAL '10' MINUTES))) E
  ON T.window_start = E.window_start AND T.window_end = E.window_end AND T.cell = E.cell
WHERE P.incidents + E.calls >= 4
