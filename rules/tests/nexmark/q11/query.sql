-- Nexmark q11, user sessions: bids per bidder in sessions closed by 10 seconds without a bid (the
-- suite's group-window SESSION written as the SESSION window function).
SELECT
    bidder,
    count(*) as bid_count,
    window_start AS starttime,
    window_end AS endtime
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end
