-- Nexmark q7, highest bid: the bids at the highest price of each 10-second window (the suite's
-- regular join on a BETWEEN written as a window join, so that it runs on windows).
SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
FROM (SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))) B
JOIN (
  SELECT MAX(price) AS maxprice, window_start, window_end
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.window_start = B1.window_start AND B.window_end = B1.window_end AND B.price = B1.maxprice
