-- title: Slow response to a severe emergency
-- severity: high
-- owner: emergency
-- location: cell
-- description: A call of severity 4 or 5 whose responders took more than 15 minutes to arrive,
-- description: beyond the city's response-time target for life-threatening calls.
SELECT call_id,
       service,
       severity,
       ROUND(response_s / 60, 1) AS response_min,
       h3_cell(lat, lon, 8) AS cell,
       ts
FROM emergency
WHERE severity >= 4 AND response_s > 900
