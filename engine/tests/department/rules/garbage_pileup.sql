-- title: Garbage piling up in a district
-- severity: medium
-- owner: urban management
-- Three or more garbage reports from one district within ten minutes.
SELECT place.district AS district, COUNT(*) AS reports, window_start, window_end
FROM TABLE(TUMBLE(TABLE grid_reports, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
WHERE ARRAY_CONTAINS(tags, 'garbage')
GROUP BY place.district, window_start, window_end
HAVING COUNT(*) >= 3
