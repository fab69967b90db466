-- Nexmark q0, pass-through: every bid as it is (the cost of reading and writing).
SELECT auction, bidder, price, `dateTime`, extra FROM bid
