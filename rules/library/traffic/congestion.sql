-- title: Congestion on a road
-- severity: medium
-- owner: traffic
-- location: cell
-- description: Average speed of flow readings on a road below 20 km/h over five minutes, with at
-- description: least 10 readings so that one slow sensor cannot raise it. 20 km/h is where urban
-- description: arterials turn stop-and-go (level of service F). Located at the H3 cell
-- description: (resolution 9) of one of the road's reporting sensors (the smallest index).
-- description: Speeds are averaged as decimals: a sum of floats depends on the order the readings
-- description: arrive in, and a rounded average could then differ between a replay and a live run.
SELECT road_id,
       window_start,
       window_end,
       CAST(ROUND(AVG(CAST(speed_kmh AS DECIMAL(18, 3))), 1) AS DOUBLE) AS avg_speed_kmh,
       COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles,
       MIN(h3_cell(lat, lon, 9)) AS cell
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
WHERE kind = 'flow' AND speed_kmh IS NOT NULL
GROUP BY road_id, window_start, window_end
HAVING AVG(CAST(speed_kmh AS DECIMAL(18, 3))) < 20 AND COUNT(*) >= 10
