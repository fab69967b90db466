SELECT window_start,
       window_end,
       road_id,
       COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, road_id
