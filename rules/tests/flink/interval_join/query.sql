SELECT p.event_id AS police_event_id,
       e.event_id AS emergency_event_id,
       p.ts AS police_ts,
       e.ts AS emergency_ts,
       p.category,
       e.service
FROM police p, emergency e
WHERE p.reporter_phone = e.caller_phone
  AND e.ts BETWEEN p.ts AND p.ts + INTERVAL '10' MINUTES
