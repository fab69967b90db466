-- title: Traffic per road per 10 seconds (benchmark: the baseline of the hopping rule)
-- severity: low
-- description: Ten-second tumbling aggregation per road, no filter; the hopping rule's cost
-- description: is compared with this one.
SELECT window_start, window_end, road_id, COUNT(*) AS n, AVG(speed_kmh) AS avg_speed
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, road_id
