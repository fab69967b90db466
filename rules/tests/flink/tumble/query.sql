SELECT window_start,
       window_end,
       road_id,
       COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles,
       MAX(speed_kmh) AS max_speed_kmh
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, road_id
