-- title: Burst of food-safety complaints about one merchant
-- severity: high
-- owner: market
-- location: cell
-- description: Three or more food-safety complaints about the same merchant within one hour:
-- description: a single complaint is noise, three independent ones point at a real problem. The
-- description: city gets a few food-safety complaints an hour over hundreds of merchants.
-- description: Located at the merchant's H3 cell (resolution 9).
SELECT merchant_id,
       window_start,
       window_end,
       COUNT(*) AS complaints,
       COUNT(DISTINCT complainant_phone) AS complainants,
       MAX(merchant_name) AS merchant_name,
       MAX(h3_cell(lat, lon, 9)) AS cell
FROM TABLE(TUMBLE(TABLE market, DESCRIPTOR(ts), INTERVAL '1' HOUR))
WHERE category = 'food_safety' AND kind = 'complaint'
GROUP BY merchant_id, window_start, window_end
HAVING COUNT(*) >= 3
