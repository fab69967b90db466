-- Urban management (城管) grid reports: what the grid inspectors and residents report on each
-- street, as the department's system publishes them. Added to citybrain as this one file, with
-- no change to citybrain (engine/tests/department.rs and the Kafka test prove it).
CREATE TABLE grid_reports (
    report_id STRING NOT NULL COMMENT '[id] the report''s number in the grid system',
    ts TIMESTAMP_LTZ(3) NOT NULL COMMENT 'when it was reported',
    reporter_phone STRING COMMENT '[personal] who reported it',
    place ROW<district STRING, street STRING, lat DOUBLE, lon DOUBLE> NOT NULL COMMENT 'where',
    tags ARRAY<STRING> COMMENT 'what: garbage, pothole, blocked, noise, ...',
    photos INT COMMENT 'photos attached',
    WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'city.grid',
    'properties.bootstrap.servers' = 'localhost:9092',
    'format' = 'json'
);
