SELECT COALESCE(L.window_start, R.window_start) AS window_start,
       COALESCE(L.window_end, R.window_end) AS window_end,
       L.event_id AS police_event_id,
       R.event_id AS emergency_event_id,
       L.category,
       R.service
FROM (SELECT * FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '10' MINUTES))) L
FULL JOIN (SELECT * FROM TABLE(TUMBLE(TABLE emergency, DESCRIPTOR(ts), INTERVAL '10' MINUTES))) R
  ON L.window_start = R.window_start
 AND L.window_end = R.window_end
 AND L.reporter_phone = R.caller_phone
