SELECT window_start,
       window_end,
       category,
       COUNT(*) AS incidents,
       MIN(priority) AS min_priority,
       MAX(priority) AS max_priority
FROM TABLE(SESSION(TABLE police PARTITION BY category, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, category
