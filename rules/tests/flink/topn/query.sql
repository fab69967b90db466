SELECT window_start, window_end, road_id, readings, rownum
FROM (
  SELECT window_start, window_end, road_id, readings,
         ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY readings DESC) AS rownum
  FROM (
    SELECT window_start, window_end, road_id, COUNT(*) AS readings
    FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
    GROUP BY window_start, window_end, road_id
  )
)
WHERE rownum <= 3
