-- title: Surge of police incidents in one area
-- severity: high
-- owner: police
-- location: cell
-- description: Six or more incident reports in the same H3 cell (resolution 7, about 5 km2)
-- description: within fifteen minutes. A busy cell normally gets one or two reports a quarter
-- description: hour (rarely four, e.g. a crash reported by several people), so six means a brawl
-- description: or riot that many people are calling about and that needs more than one unit.
SELECT h3_cell(lat, lon, 7) AS cell,
       window_start,
       window_end,
       COUNT(*) AS incidents,
       MIN(priority) AS most_urgent_priority,
       COUNT(DISTINCT category) AS categories
FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
GROUP BY h3_cell(lat, lon, 7), window_start, window_end
HAVING COUNT(*) >= 6
