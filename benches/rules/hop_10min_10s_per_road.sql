-- title: Traffic per road over 10 minutes every 10 seconds (benchmark: the Flink hop rule)
-- severity: low
-- description: Ten-minute window hopping every ten seconds per road, no filter (Flink's HOP
-- description: argument order: slide, then size).
SELECT window_start, window_end, road_id, COUNT(*) AS n, AVG(speed_kmh) AS avg_speed
FROM TABLE(HOP(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, road_id
