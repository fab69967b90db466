-- title: Repeated emergency calls from one caller
-- severity: medium
-- owner: emergency
-- description: The same (pseudonymised) phone number calls three or more times in thirty
-- description: minutes: either an unresolved emergency or line abuse; both need a supervisor.
-- description: Calling back once (a dropped line, a question) is common; a third call is not.
SELECT caller_phone,
       window_start,
       window_end,
       COUNT(*) AS calls,
       MAX(severity) AS max_severity
FROM TABLE(TUMBLE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '30' MINUTES))
WHERE caller_phone IS NOT NULL
GROUP BY caller_phone, window_start, window_end
HAVING COUNT(*) >= 3
