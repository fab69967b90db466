-- Nexmark q10, log to file system: every bid with its day and minute (the suite writes them to
-- partitioned files; this is its SELECT).
SELECT auction, bidder, price, `dateTime`, extra, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') AS dt,
    DATE_FORMAT(`dateTime`, 'HH:mm') AS hm
FROM bid
