SELECT L.window_start,
       L.window_end,
       L.event_id AS police_event_id,
       R.event_id AS emergency_event_id,
       L.ts AS police_ts,
       R.ts AS emergency_ts,
       L.category,
       R.service
FROM (SELECT * FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '10' MINUTES))) L
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '10' MINUTES))) R
  ON L.window_start = R.window_start
 AND L.window_end = R.window_end
 AND L.reporter_phone = R.caller_phone
