SELECT window_start,
       window_end,
       road_id,
       COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles,
       MIN(speed_kmh) AS min_speed_kmh
FROM TABLE(HOP(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, road_id
