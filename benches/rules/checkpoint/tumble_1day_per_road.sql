-- title: Traffic per road per day (benchmark: checkpoint state of many keys)
-- severity: low
-- description: One-day tumbling aggregation per road: every distinct road of the input holds
-- description: one group of partial aggregates until the day ends (citybrain-bench checkpoint).
SELECT window_start, window_end, road_id, COUNT(*) AS n, AVG(speed_kmh) AS avg_speed
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' DAY))
GROUP BY window_start, window_end, road_id
