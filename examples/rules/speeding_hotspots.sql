-- title: Speeding hotspot
-- severity: low
-- owner: traffic
-- description: Grid cells (H3 resolution 8) where 90% of flow readings in 15 minutes are
-- description: above 80 km/h, on at least 5 readings: candidates for a speed camera.
SELECT h3_cell(lat, lon, 8) AS cell,
       window_start,
       window_end,
       COUNT(*) AS readings,
       approx_percentile_cont(0.1) WITHIN GROUP (ORDER BY speed_kmh) AS p10_speed_kmh
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
WHERE kind = 'flow'
GROUP BY h3_cell(lat, lon, 8), window_start, window_end
HAVING COUNT(*) >= 5 AND approx_percentile_cont(0.1) WITHIN GROUP (ORDER BY speed_kmh) > 80
