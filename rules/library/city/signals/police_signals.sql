-- title: Police signals per cell (view)
-- severity: info
-- owner: city
-- emit: view
-- description: Per H3 cell (resolution 8) and ten-minute window: how many police incident reports,
-- description: how many of them violent (fight, assault, disturbance), and the most urgent
-- description: priority. Read by city/crowd_risk and city/cell_risk_score. The event time of a row
-- description: is its window_time, selected as `rowtime` (see city/signals/traffic_signals).
SELECT window_time AS rowtime,
       h3_cell(lat, lon, 8) AS cell,
       COUNT(*) AS incidents,
       COUNT(*) FILTER (WHERE category IN ('fight', 'assault', 'disturbance')) AS violent,
       MIN(priority) AS most_urgent_priority
FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, window_time, h3_cell(lat, lon, 8)
