-- title: Congestion on a road
-- severity: medium
-- owner: traffic
-- location: cell
-- description: Average speed of flow readings on a road below 20 km/h over five minutes, with at
-- description: least 10 readings so that one slow sensor cannot raise it. 20 km/h is where urban
-- description: arterials turn stop-and-go (level of service F). Located at the H3 cell
-- description: (resolution 9) of one of the road's reporting sensors (the smallest index).
SELECT road_id,
       window_start,
       window_end,
       ROUND(AVG(speed_kmh), 1) AS avg_speed_kmh,
       COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles,
       MIN(h3_cell(lat, lon, 9)) AS cell
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
WHERE kind = 'flow' AND speed_kmh IS NOT NULL
GROUP BY road_id, window_start, window_end
HAVING AVG(speed_kmh) < 20 AND COUNT(*) >= 10
