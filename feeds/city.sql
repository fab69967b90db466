-- The city feed standard: the four departments' feeds as Flink SQL tables. docs/feeds.md is the
-- readable version (a test checks that it says what this file says). Each feed is a Kafka topic
-- of JSON objects; `citybrain replay --input DIR` reads DIR/<table>.jsonl instead, and
-- `citybrain run --brokers` overrides 'properties.bootstrap.servers'.
--
-- Every feed has an event id, an event time `ts` (RFC 3339 with an offset, or epoch milliseconds)
-- with a watermark 5 seconds behind it, and a WGS 84 position. A column COMMENT may start with a
-- tag: [personal] marks personal data (citybrain replaces its values by keyed pseudonyms at
-- ingest), [id] the record's id (Flink's kafka connector refuses a PRIMARY KEY on JSON topics),
-- [range MIN MAX] the values a number may take (outside it, the record is malformed).

CREATE TABLE traffic (
    event_id STRING NOT NULL COMMENT '[id] unique id chosen by the producer',
    ts TIMESTAMP_LTZ(3) NOT NULL COMMENT 'event time',
    lat DOUBLE NOT NULL COMMENT '[range -90 90] WGS 84 latitude, degrees',
    lon DOUBLE NOT NULL COMMENT '[range -180 180] WGS 84 longitude, degrees',
    sensor_id STRING COMMENT 'sensor or camera id',
    road_id STRING COMMENT 'road segment id',
    speed_kmh DOUBLE COMMENT 'mean speed, km/h',
    vehicle_count BIGINT COMMENT 'vehicles counted in the reporting interval (1 min)',
    occupancy DOUBLE COMMENT 'lane occupancy, fraction 0-1',
    plate STRING COMMENT '[personal] licence plate',
    kind STRING COMMENT 'flow | accident | violation',
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) COMMENT 'road sensors and cameras' WITH (
    'connector' = 'kafka',
    'topic' = 'city.traffic',
    'properties.bootstrap.servers' = 'localhost:9092',
    'format' = 'json'
);

CREATE TABLE police (
    event_id STRING NOT NULL COMMENT '[id] unique id chosen by the producer',
    ts TIMESTAMP_LTZ(3) NOT NULL COMMENT 'event time',
    lat DOUBLE NOT NULL COMMENT '[range -90 90] WGS 84 latitude, degrees',
    lon DOUBLE NOT NULL COMMENT '[range -180 180] WGS 84 longitude, degrees',
    incident_id STRING COMMENT 'incident id',
    category STRING COMMENT 'theft, assault, fight, fraud, traffic_accident, disturbance, ...',
    priority BIGINT COMMENT '1 (most urgent) to 4',
    reporter_phone STRING COMMENT '[personal] reporter''s phone number',
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) COMMENT 'incident reports' WITH (
    'connector' = 'kafka',
    'topic' = 'city.police',
    'properties.bootstrap.servers' = 'localhost:9092',
    'format' = 'json'
);

CREATE TABLE emergency (
    event_id STRING NOT NULL COMMENT '[id] unique id chosen by the producer',
    ts TIMESTAMP_LTZ(3) NOT NULL COMMENT 'event time',
    lat DOUBLE NOT NULL COMMENT '[range -90 90] WGS 84 latitude, degrees',
    lon DOUBLE NOT NULL COMMENT '[range -180 180] WGS 84 longitude, degrees',
    call_id STRING COMMENT 'call id',
    service STRING COMMENT 'medical | fire | rescue | hazmat',
    severity BIGINT COMMENT '1 to 5 (5 worst)',
    caller_phone STRING COMMENT '[personal] caller''s phone number',
    caller_id_no STRING COMMENT '[personal] caller''s national ID number (18 characters)',
    response_s DOUBLE COMMENT 'seconds from call to arrival on scene',
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) COMMENT 'emergency calls' WITH (
    'connector' = 'kafka',
    'topic' = 'city.emergency',
    'properties.bootstrap.servers' = 'localhost:9092',
    'format' = 'json'
);

CREATE TABLE market (
    event_id STRING NOT NULL COMMENT '[id] unique id chosen by the producer',
    ts TIMESTAMP_LTZ(3) NOT NULL COMMENT 'event time',
    lat DOUBLE NOT NULL COMMENT '[range -90 90] WGS 84 latitude, degrees',
    lon DOUBLE NOT NULL COMMENT '[range -180 180] WGS 84 longitude, degrees',
    merchant_id STRING COMMENT 'merchant id, e.g. M0042',
    merchant_name STRING COMMENT 'registered name',
    category STRING COMMENT 'food_safety | price | counterfeit | license | quality',
    kind STRING COMMENT 'complaint | inspection',
    complainant_phone STRING COMMENT '[personal] complainant''s phone number',
    amount_cny DOUBLE COMMENT 'amount in dispute, yuan (CNY)',
    result STRING COMMENT 'inspection result: pass | fail',
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) COMMENT 'market supervision' WITH (
    'connector' = 'kafka',
    'topic' = 'city.market',
    'properties.bootstrap.servers' = 'localhost:9092',
    'format' = 'json'
);
