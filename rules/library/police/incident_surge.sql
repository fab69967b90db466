-- title: Surge of police incidents in one area
-- severity: high
-- owner: police
-- description: Eight or more incident reports in the same H3 cell (resolution 7, about 5 km2)
-- description: within fifteen minutes, several times the busiest normal quarter hour of a cell.
SELECT h3_cell(lat, lon, 7) AS cell,
       window_start,
       window_end,
       COUNT(*) AS incidents,
       MIN(priority) AS most_urgent_priority,
       COUNT(DISTINCT category) AS categories
FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
GROUP BY h3_cell(lat, lon, 7), window_start, window_end
HAVING COUNT(*) >= 8
