-- Nexmark q1, currency conversion: bid prices in euros.
SELECT
    auction,
    bidder,
    0.908 * price as price, -- convert dollar to euro
    `dateTime`,
    extra
FROM bid
