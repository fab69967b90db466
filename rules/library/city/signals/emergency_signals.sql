-- title: Emergency signals per cell (view)
-- severity: info
-- owner: city
-- emit: view
-- description: Per H3 cell (resolution 8) and ten-minute window: how many emergency calls, how
-- description: many medical, how many severe (severity 4 or 5). Read by city/crowd_risk and
-- description: city/cell_risk_score. The event time of a row is its window_time, selected as
-- description: `rowtime` (see city/signals/traffic_signals).
SELECT window_time AS rowtime,
       h3_cell(lat, lon, 8) AS cell,
       COUNT(*) AS calls,
       COUNT(*) FILTER (WHERE service = 'medical') AS medical_calls,
       COUNT(*) FILTER (WHERE severity >= 4) AS severe_calls
FROM TABLE(TUMBLE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, window_time, h3_cell(lat, lon, 8)
