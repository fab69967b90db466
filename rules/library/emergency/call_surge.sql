-- title: Surge of emergency calls in one area
-- severity: high
-- owner: emergency
-- location: cell
-- description: Eight or more emergency calls from at least five different (pseudonymised) phones
-- description: in the same H3 cell (resolution 7, about 5 km2) within the current hour. A busy
-- description: cell gets two or three calls an hour; eight from five callers means something
-- description: many people see at once (fire, collapse, crowd crush). Distinct callers keep one
-- description: repeated caller (emergency/repeated_caller) from raising it alone. A cumulating
-- description: window (every 10 minutes, up to one hour) alerts as soon as the count is reached
-- description: instead of at the end of the hour, and again at each later step of that hour
-- description: while it stays above (same cell and hour: one incident).
SELECT h3_cell(lat, lon, 7) AS cell,
       window_start,
       window_end,
       COUNT(*) AS calls,
       COUNT(DISTINCT caller_phone) AS callers,
       MAX(severity) AS max_severity,
       COUNT(DISTINCT service) AS services
FROM TABLE(CUMULATE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '10' MINUTES, INTERVAL '1' HOUR))
GROUP BY h3_cell(lat, lon, 7), window_start, window_end
HAVING COUNT(*) >= 8 AND COUNT(DISTINCT caller_phone) >= 5
