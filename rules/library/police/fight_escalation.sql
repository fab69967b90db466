-- title: Fights escalating in one area
-- severity: high
-- owner: police
-- location: cell
-- description: Three or more fight or assault reports in the same H3 cell (resolution 8, about
-- description: 0.7 km2) within thirty minutes, where the latest report is more urgent (a lower
-- description: priority number) than the first: the same quarrel is growing, not settling. One
-- description: fight is routine for a patrol; two can be the two parties calling; three rising
-- description: reports in half an hour mean the unit on scene needs backup. A hopping window (30
-- description: minutes, every 5 minutes) catches a run of reports however it straddles the clock,
-- description: so one escalation is reported by every 30-minute window holding it (same cell,
-- description: consecutive windows: one incident for the operator).
SELECT h3_cell(lat, lon, 8) AS cell,
       window_start,
       window_end,
       COUNT(*) AS fights,
       first_value(priority ORDER BY ts) AS first_priority,
       last_value(priority ORDER BY ts) AS last_priority,
       MIN(priority) AS most_urgent_priority
FROM TABLE(HOP(TABLE police, DESCRIPTOR(ts), INTERVAL '5' MINUTES, INTERVAL '30' MINUTES))
WHERE category IN ('fight', 'assault') AND priority IS NOT NULL
GROUP BY h3_cell(lat, lon, 8), window_start, window_end
HAVING COUNT(*) >= 3 AND last_value(priority ORDER BY ts) < first_value(priority ORDER BY ts)
