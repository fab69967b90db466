SELECT window_start,
       window_end,
       road_id,
       COUNT(*) AS readings,
       COUNT(vehicle_count) AS counted,
       SUM(vehicle_count) AS vehicles,
       AVG(vehicle_count) AS avg_vehicles,
       SUM(vehicle_count) / COUNT(vehicle_count) AS ratio
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, road_id
