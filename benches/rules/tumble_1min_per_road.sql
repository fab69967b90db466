-- title: Traffic per road per minute (benchmark: the Flink comparison rule)
-- severity: low
-- description: One-minute tumbling aggregation per road, no filter: every road and minute
-- description: becomes an alert. The same query runs in Flink SQL on the same file.
SELECT window_start, window_end, road_id, COUNT(*) AS n, AVG(speed_kmh) AS avg_speed
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, road_id
