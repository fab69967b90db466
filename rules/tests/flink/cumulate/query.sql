SELECT window_start,
       window_end,
       road_id,
       COUNT(*) AS readings,
       SUM(vehicle_count) AS vehicles,
       MAX(vehicle_count) AS max_vehicles
FROM TABLE(CUMULATE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '2' MINUTES, INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, road_id
