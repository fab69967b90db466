-- title: Merchant failed an inspection
-- severity: medium
-- owner: market
-- location: cell
-- description: Every failed inspection, so that a follow-up visit is scheduled and any open
-- description: complaints about the merchant are reviewed together.
SELECT merchant_id,
       merchant_name,
       category,
       h3_cell(lat, lon, 8) AS cell,
       ts
FROM market
WHERE kind = 'inspection' AND result = 'fail'
