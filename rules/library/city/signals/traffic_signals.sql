-- title: Traffic signals per cell (view)
-- severity: info
-- owner: city
-- emit: view
-- description: Per H3 cell (resolution 8) and ten-minute window: how many traffic accidents the
-- description: road sensors and cameras reported, on how many roads. Read by city/crowd_risk and
-- description: city/cell_risk_score. Only cells with at least one accident have a row. The event
-- description: time of a row is its window_time, selected as `rowtime` (Flink's name for the
-- description: time attribute of a cascaded window) because readers window it again and a
-- description: window adds its own window_start, window_end and window_time columns.
SELECT window_time AS rowtime,
       h3_cell(lat, lon, 8) AS cell,
       COUNT(*) AS accidents,
       COUNT(DISTINCT road_id) AS roads
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
WHERE kind = 'accident'
GROUP BY window_start, window_end, window_time, h3_cell(lat, lon, 8)
