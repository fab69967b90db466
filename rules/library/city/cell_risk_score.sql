-- title: High risk score in one cell
-- severity: high
-- owner: city
-- location: cell
-- description: One risk score per H3 cell (resolution 8, about 0.7 km2) and ten-minute window,
-- description: chained from the per-department views city/signals/*: 3 per traffic accident, 2 per
-- description: police report plus 1 more if it is violent, 2 per emergency call plus 1 more if it
-- description: is severe (4 or 5). Alerts at 12 or more. One ordinary crash (accident, police
-- description: report, a severe medical call) scores 3 + 2 + 3 = 8 and does not fire; a crash
-- description: with a crowd around it, or one department alone seeing a lot (four fights score
-- description: 12), does. Full outer joins, so a cell seen by any one department gets a score.
SELECT COALESCE(T.window_start, P.window_start, E.window_start) AS window_start,
       COALESCE(T.window_end, P.window_end, E.window_end) AS window_end,
       COALESCE(T.cell, P.cell, E.cell) AS cell,
       3 * COALESCE(T.accidents, 0)
         + 2 * COALESCE(P.incidents, 0) + COALESCE(P.violent, 0)
         + 2 * COALESCE(E.calls, 0) + COALESCE(E.severe_calls, 0) AS score,
       COALESCE(T.accidents, 0) AS accidents,
       COALESCE(P.incidents, 0) AS incidents,
       COALESCE(P.violent, 0) AS violent,
       COALESCE(E.calls, 0) AS calls,
       COALESCE(E.severe_calls, 0) AS severe_calls
FROM (SELECT * FROM TABLE(TUMBLE(TABLE traffic_signals, DESCRIPTOR(rowtime), INTERVAL '10' MINUTES))) T
FULL JOIN (SELECT * FROM TABLE(TUMBLE(TABLE police_signals, DESCRIPTOR(rowtime), INTERVAL '10' MINUTES))) P
  ON T.window_start = P.window_start AND T.window_end = P.window_end AND T.cell = P.cell
FULL JOIN (SELECT * FROM TABLE(TUMBLE(TABLE emergency_signals, DESCRIPTOR(rowtime), INTERVAL '10' MINUTES))) E
  ON COALESCE(T.window_start, P.window_start) = E.window_start
 AND COALESCE(T.window_end, P.window_end) = E.window_end
 AND COALESCE(T.cell, P.cell) = E.cell
WHERE 3 * COALESCE(T.accidents, 0)
        + 2 * COALESCE(P.incidents, 0) + COALESCE(P.violent, 0)
        + 2 * COALESCE(E.calls, 0) + COALESCE(E.severe_calls, 0) >= 12
