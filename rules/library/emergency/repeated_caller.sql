-- title: Repeated emergency calls from one caller
-- severity: medium
-- owner: emergency
-- location: cell
-- description: The same (pseudonymised) phone number calls three or more times in thirty
-- description: minutes: either an unresolved emergency or line abuse; both need a supervisor.
-- description: Calling back once (a dropped line, a question) is common; a third call is not.
-- description: Located at one of the calls' H3 cells (resolution 9, the largest index).
SELECT caller_phone,
       window_start,
       window_end,
       COUNT(*) AS calls,
       MAX(severity) AS max_severity,
       MAX(h3_cell(lat, lon, 9)) AS cell
FROM TABLE(TUMBLE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '30' MINUTES))
WHERE caller_phone IS NOT NULL
GROUP BY caller_phone, window_start, window_end
HAVING COUNT(*) >= 3
