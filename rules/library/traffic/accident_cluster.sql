-- title: Accident cluster in one grid cell
-- severity: high
-- owner: traffic
-- location: cell
-- description: Two or more accidents reported in the same H3 cell (resolution 8, about 0.7 km2)
-- description: within ten minutes: one crash often causes the next, and responders should treat
-- description: the place as one scene. A city reports a handful of accidents an hour spread over
-- description: hundreds of cells, so two in one cell within ten minutes is rarely chance.
SELECT h3_cell(lat, lon, 8) AS cell,
       window_start,
       window_end,
       COUNT(*) AS accidents,
       COUNT(DISTINCT road_id) AS roads
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
WHERE kind = 'accident'
GROUP BY h3_cell(lat, lon, 8), window_start, window_end
HAVING COUNT(*) >= 2
