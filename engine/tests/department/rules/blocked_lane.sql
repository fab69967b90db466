-- title: Blocked lane reported
-- severity: high
SELECT report_id, place.street AS street, reporter_phone, tags
FROM grid_reports
WHERE ARRAY_CONTAINS(tags, 'blocked')
