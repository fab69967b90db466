-- Nexmark: the auction site of the Nexmark benchmark, as the Flink Nexmark suite declares it
-- (field names, types, a watermark 4 seconds behind `dateTime`), one JSON-lines file per table.
-- `citybrain simulate --nexmark --out DIR --events N` writes DIR/person.jsonl, auction.jsonl and
-- bid.jsonl; `citybrain replay --feeds feeds/nexmark.sql --input DIR` reads them. Flink runs this
-- file as it is (scripts/flink/nexmark.py sets each 'path' to the folder it is given).

CREATE TABLE person (
    id BIGINT,
    name VARCHAR,
    emailAddress VARCHAR,
    creditCard VARCHAR,
    city VARCHAR,
    state VARCHAR,
    `dateTime` TIMESTAMP(3),
    extra VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = 'person.jsonl',
    'format' = 'json'
);

CREATE TABLE auction (
    id BIGINT,
    itemName VARCHAR,
    description VARCHAR,
    initialBid BIGINT,
    reserve BIGINT,
    `dateTime` TIMESTAMP(3),
    expires TIMESTAMP(3),
    seller BIGINT,
    category BIGINT,
    extra VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = 'auction.jsonl',
    'format' = 'json'
);

CREATE TABLE bid (
    auction BIGINT,
    bidder BIGINT,
    price BIGINT,
    channel VARCHAR,
    url VARCHAR,
    `dateTime` TIMESTAMP(3),
    extra VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = 'bid.jsonl',
    'format' = 'json'
);
