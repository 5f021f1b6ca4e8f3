-- bronze/raw: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true", "replaceWhere": "_partition_hour IN (TIMESTAMP '2026-11-25 10:00:00', TIMESTAMP '2026-11-25 11:00:00')"}, "table_properties": {}}

-- bronze/raw (autoloader): Auto Loader stream
-- {"checkpoint": "/Volumes/lakehouse/prod/pipes/autoloader/bronze_raw/checkpoint", "options": {"cloudFiles.format": "parquet", "cloudFiles.includeExistingFiles": "true", "cloudFiles.schemaEvolutionMode": "addNewColumns", "cloudFiles.schemaLocation": "/Volumes/lakehouse/prod/pipes/autoloader/bronze_raw/schema", "pathGlobFilter": "*.parquet", "recursiveFileLookup": "true", "rescuedDataColumn": "_rescued_data"}, "sources": ["s3://edge-databricks-raw-us-east-1/"], "trigger": {"availableNow": true}}

-- bronze/regional: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true", "replaceWhere": "(_partition_hour = TIMESTAMP '2026-11-25 10:00:00' AND _region = 'eu-west-1')"}, "table_properties": {}}

-- gold/anomalies: select
SELECT
  *
FROM (
  SELECT
    sensor_id,
    event_time,
    node_id,
    region,
    CONCAT_WS(
      ';',
      CASE WHEN anomaly_flag = 1 THEN 'anomaly:' || COALESCE(anomaly_type, 'unknown') END,
      CASE
        WHEN temperature > 75.0
        THEN 'temperature_high'
        WHEN temperature < 52.0
        THEN 'temperature_low'
      END,
      CASE
        WHEN pressure > 14.5
        THEN 'pressure_high'
        WHEN pressure < 10.5
        THEN 'pressure_low'
      END,
      CASE
        WHEN voltage > 12.4
        THEN 'voltage_high'
        WHEN voltage < 11.6
        THEN 'voltage_low'
      END,
      CASE
        WHEN humidity > 95.0
        THEN 'humidity_high'
        WHEN humidity < 1.0
        THEN 'humidity_low'
      END
    ) AS reason,
    anomaly_type,
    temperature,
    humidity,
    pressure,
    voltage,
    vibration,
    latitude,
    longitude,
    source_scenario,
    _partition_hour AS hour
  FROM silver_sensor_readings
  WHERE
    _partition_hour >= :start AND _partition_hour < :end
) AS attention
WHERE
  LENGTH(reason) > 0;

-- gold/anomalies: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true", "replaceWhere": "hour >= TIMESTAMP '2026-11-25 10:00:00' AND hour < TIMESTAMP '2026-11-25 12:00:00'"}, "table_properties": {"delta.enableChangeDataFeed": "true"}}

-- gold/fleet_health: select
SELECT
  node_id,
  sensor_id,
  MAX_BY(region, event_time) AS region,
  MAX(event_time) AS last_reading_at,
  MAX_BY(temperature, event_time) AS last_temperature,
  COUNT(*) FILTER(WHERE
    event_time >= CURRENT_TIMESTAMP() - INTERVAL '24' HOUR) AS readings_24h,
  CASE
    WHEN MAX(event_time) < CURRENT_TIMESTAMP() - INTERVAL '1' HOUR
    THEN 'silent'
    ELSE 'ok'
  END AS status
FROM silver_sensor_readings
GROUP BY
  node_id,
  sensor_id;

-- gold/fleet_health: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true"}, "table_properties": {"delta.enableChangeDataFeed": "true"}}

-- gold/readings_all_regions: select
SELECT
  region,
  node_id,
  sensor_id,
  event_time,
  temperature,
  humidity,
  pressure,
  voltage,
  vibration,
  anomaly_flag,
  anomaly_type,
  latitude,
  longitude,
  source_scenario
FROM silver_sensor_readings;

-- gold/readings_all_regions: CREATE OR REPLACE VIEW over the select above

-- gold/region_hourly_stats: select
SELECT
  region,
  _partition_hour AS hour,
  COUNT(*) AS readings,
  COUNT(DISTINCT node_id) AS nodes,
  COUNT(DISTINCT sensor_id) AS sensors,
  AVG(temperature) AS avg_temperature,
  MIN(temperature) AS min_temperature,
  MAX(temperature) AS max_temperature,
  AVG(humidity) AS avg_humidity,
  MIN(humidity) AS min_humidity,
  MAX(humidity) AS max_humidity,
  AVG(pressure) AS avg_pressure,
  MIN(pressure) AS min_pressure,
  MAX(pressure) AS max_pressure,
  AVG(voltage) AS avg_voltage,
  MIN(voltage) AS min_voltage,
  MAX(voltage) AS max_voltage,
  AVG(vibration) AS avg_vibration,
  MIN(vibration) AS min_vibration,
  MAX(vibration) AS max_vibration,
  CAST(AVG(COALESCE(anomaly_flag, 0)) AS DOUBLE) AS anomaly_rate
FROM silver_sensor_readings
WHERE
  _partition_hour >= :start AND _partition_hour < :end
GROUP BY
  region,
  hour;

-- gold/region_hourly_stats: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true", "replaceWhere": "hour >= TIMESTAMP '2026-11-25 10:00:00' AND hour < TIMESTAMP '2026-11-25 12:00:00'"}, "table_properties": {"delta.enableChangeDataFeed": "true"}}

-- gold/sensor_hourly_stats: select
SELECT
  sensor_id,
  _partition_hour AS hour,
  MAX_BY(node_id, event_time) AS node_id,
  MAX_BY(region, event_time) AS region,
  COUNT(*) AS readings,
  AVG(temperature) AS avg_temperature,
  MIN(temperature) AS min_temperature,
  MAX(temperature) AS max_temperature,
  AVG(humidity) AS avg_humidity,
  MIN(humidity) AS min_humidity,
  MAX(humidity) AS max_humidity,
  AVG(pressure) AS avg_pressure,
  MIN(pressure) AS min_pressure,
  MAX(pressure) AS max_pressure,
  AVG(voltage) AS avg_voltage,
  MIN(voltage) AS min_voltage,
  MAX(voltage) AS max_voltage,
  AVG(vibration) AS avg_vibration,
  MIN(vibration) AS min_vibration,
  MAX(vibration) AS max_vibration,
  SUM(COALESCE(anomaly_flag, 0)) AS anomalies,
  CAST(AVG(COALESCE(anomaly_flag, 0)) AS DOUBLE) AS anomaly_rate
FROM silver_sensor_readings
WHERE
  _partition_hour >= :start AND _partition_hour < :end
GROUP BY
  sensor_id,
  hour;

-- gold/sensor_hourly_stats: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true", "replaceWhere": "hour >= TIMESTAMP '2026-11-25 10:00:00' AND hour < TIMESTAMP '2026-11-25 12:00:00'"}, "table_properties": {"delta.enableChangeDataFeed": "true"}}

-- silver: dedup
SELECT
  `node_id`,
  `region`,
  `sensor_id`,
  `event_time`,
  `temperature`,
  `humidity`,
  `pressure`,
  `vibration`,
  `voltage`,
  `status_code`,
  `anomaly_flag`,
  `anomaly_type`,
  `emergency_reason`,
  `firmware_version`,
  `model`,
  `manufacturer`,
  `location`,
  `latitude`,
  `longitude`,
  `sensor_type`,
  `source_object`,
  `source_id`,
  `_partition_hour`,
  `source_scenario`
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY sensor_id, event_time
      ORDER BY (
        COALESCE(REGEXP_LIKE(sensor_id, '^[A-Z]{3}_[0-9]{6}$'), FALSE)
        AND COALESCE(
          (
            temperature IS NULL OR (
              temperature >= -50.0 AND temperature <= 150.0
            )
          ),
          FALSE
        )
        AND COALESCE((
          humidity IS NULL OR (
            humidity >= 0.0 AND humidity <= 100.0
          )
        ), FALSE)
        AND COALESCE((
          pressure IS NULL OR (
            pressure >= 0.0 AND pressure <= 20.0
          )
        ), FALSE)
        AND COALESCE((
          voltage IS NULL OR (
            voltage >= 0.0 AND voltage <= 24.0
          )
        ), FALSE)
        AND COALESCE((
          vibration IS NULL OR (
            vibration >= 0.0
          )
        ), FALSE)
        AND COALESCE((
          latitude IS NULL OR (
            latitude >= -90.0 AND latitude <= 90.0
          )
        ), FALSE)
        AND COALESCE(
          (
            longitude IS NULL OR (
              longitude >= -180.0 AND longitude <= 180.0
            )
          ),
          FALSE
        )
      ) DESC, _priority NULLS LAST, source_object NULLS LAST, source_id NULLS LAST
    ) AS _rank
  FROM silver_all
) AS ranked
WHERE
  _rank = 1;

-- silver: violations
SELECT
  _partition_hour AS _hour,
  COUNT(*) AS _rows,
  COALESCE(COUNT_IF(NOT COALESCE(NOT sensor_id IS NULL, FALSE)), 0) AS `sensor_id_present`,
  COALESCE(COUNT_IF(NOT COALESCE(NOT event_time IS NULL, FALSE)), 0) AS `event_time_present`,
  COALESCE(COUNT_IF(NOT COALESCE(REGEXP_LIKE(sensor_id, '^[A-Z]{3}_[0-9]{6}$'), FALSE)), 0) AS `sensor_id_format`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE(
        (
          temperature IS NULL OR (
            temperature >= -50.0 AND temperature <= 150.0
          )
        ),
        FALSE
      )
    ),
    0
  ) AS `temperature_in_range`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE((
        humidity IS NULL OR (
          humidity >= 0.0 AND humidity <= 100.0
        )
      ), FALSE)
    ),
    0
  ) AS `humidity_in_range`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE((
        pressure IS NULL OR (
          pressure >= 0.0 AND pressure <= 20.0
        )
      ), FALSE)
    ),
    0
  ) AS `pressure_in_range`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE((
        voltage IS NULL OR (
          voltage >= 0.0 AND voltage <= 24.0
        )
      ), FALSE)
    ),
    0
  ) AS `voltage_in_range`,
  COALESCE(
    COUNT_IF(NOT COALESCE((
      vibration IS NULL OR (
        vibration >= 0.0
      )
    ), FALSE)),
    0
  ) AS `vibration_in_range`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE((
        latitude IS NULL OR (
          latitude >= -90.0 AND latitude <= 90.0
        )
      ), FALSE)
    ),
    0
  ) AS `latitude_in_range`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE(
        (
          longitude IS NULL OR (
            longitude >= -180.0 AND longitude <= 180.0
          )
        ),
        FALSE
      )
    ),
    0
  ) AS `longitude_in_range`,
  COALESCE(
    COUNT_IF(
      NOT COALESCE(
        COALESCE(anomaly_flag, 0) = 0
        OR anomaly_type IN ('spike', 'trend', 'pattern', 'missing_data', 'noise'),
        FALSE
      )
    ),
    0
  ) AS `anomaly_type_known`,
  COALESCE(
    COUNT_IF(NOT COALESCE(event_time <= CURRENT_TIMESTAMP() + INTERVAL '5' MINUTE, FALSE)),
    0
  ) AS `event_time_not_in_future`
FROM silver_stage
GROUP BY
  _partition_hour
ORDER BY
  _partition_hour NULLS LAST;

-- silver: kept
SELECT
  *
FROM silver_stage
WHERE
  COALESCE(REGEXP_LIKE(sensor_id, '^[A-Z]{3}_[0-9]{6}$'), FALSE)
  AND COALESCE(
    (
      temperature IS NULL OR (
        temperature >= -50.0 AND temperature <= 150.0
      )
    ),
    FALSE
  )
  AND COALESCE((
    humidity IS NULL OR (
      humidity >= 0.0 AND humidity <= 100.0
    )
  ), FALSE)
  AND COALESCE((
    pressure IS NULL OR (
      pressure >= 0.0 AND pressure <= 20.0
    )
  ), FALSE)
  AND COALESCE((
    voltage IS NULL OR (
      voltage >= 0.0 AND voltage <= 24.0
    )
  ), FALSE)
  AND COALESCE((
    vibration IS NULL OR (
      vibration >= 0.0
    )
  ), FALSE)
  AND COALESCE((
    latitude IS NULL OR (
      latitude >= -90.0 AND latitude <= 90.0
    )
  ), FALSE)
  AND COALESCE(
    (
      longitude IS NULL OR (
        longitude >= -180.0 AND longitude <= 180.0
      )
    ),
    FALSE
  );

-- silver: select from bronze_emergency
SELECT
  TRY_CAST(`_node_id` AS STRING) AS `node_id`,
  TRY_CAST(`_region` AS STRING) AS `region`,
  TRY_CAST(`sensor_id` AS STRING) AS `sensor_id`,
  TRY_CAST(`timestamp` AS TIMESTAMP) AS `event_time`,
  TRY_CAST(`temperature` AS DOUBLE) AS `temperature`,
  TRY_CAST(`humidity` AS DOUBLE) AS `humidity`,
  TRY_CAST(`pressure` AS DOUBLE) AS `pressure`,
  TRY_CAST(`vibration` AS DOUBLE) AS `vibration`,
  TRY_CAST(`voltage` AS DOUBLE) AS `voltage`,
  TRY_CAST(`status_code` AS BIGINT) AS `status_code`,
  TRY_CAST(`anomaly_flag` AS BIGINT) AS `anomaly_flag`,
  TRY_CAST(`anomaly_type` AS STRING) AS `anomaly_type`,
  TRY_CAST(`emergency_reason` AS STRING) AS `emergency_reason`,
  TRY_CAST(`firmware_version` AS STRING) AS `firmware_version`,
  TRY_CAST(`model` AS STRING) AS `model`,
  TRY_CAST(`manufacturer` AS STRING) AS `manufacturer`,
  TRY_CAST(`location` AS STRING) AS `location`,
  TRY_CAST(`latitude` AS DOUBLE) AS `latitude`,
  TRY_CAST(`longitude` AS DOUBLE) AS `longitude`,
  TRY_CAST(`sensor_type` AS STRING) AS `sensor_type`,
  TRY_CAST(`_source_object` AS STRING) AS `source_object`,
  TRY_CAST(`id` AS BIGINT) AS `source_id`,
  TRY_CAST(`_partition_hour` AS TIMESTAMP) AS `_partition_hour`,
  'emergency' AS source_scenario,
  4 AS _priority
FROM `bronze_emergency`
WHERE
  _partition_hour >= :start AND _partition_hour < :end;

-- silver: select from bronze_filtered
SELECT
  TRY_CAST(`_node_id` AS STRING) AS `node_id`,
  TRY_CAST(`_region` AS STRING) AS `region`,
  TRY_CAST(`sensor_id` AS STRING) AS `sensor_id`,
  TRY_CAST(`timestamp` AS TIMESTAMP) AS `event_time`,
  TRY_CAST(`temperature` AS DOUBLE) AS `temperature`,
  TRY_CAST(`humidity` AS DOUBLE) AS `humidity`,
  TRY_CAST(`pressure` AS DOUBLE) AS `pressure`,
  TRY_CAST(`vibration` AS DOUBLE) AS `vibration`,
  TRY_CAST(`voltage` AS DOUBLE) AS `voltage`,
  TRY_CAST(`status_code` AS BIGINT) AS `status_code`,
  TRY_CAST(`anomaly_flag` AS BIGINT) AS `anomaly_flag`,
  TRY_CAST(`anomaly_type` AS STRING) AS `anomaly_type`,
  TRY_CAST(`emergency_reason` AS STRING) AS `emergency_reason`,
  TRY_CAST(`firmware_version` AS STRING) AS `firmware_version`,
  TRY_CAST(`model` AS STRING) AS `model`,
  TRY_CAST(`manufacturer` AS STRING) AS `manufacturer`,
  TRY_CAST(`location` AS STRING) AS `location`,
  TRY_CAST(`latitude` AS DOUBLE) AS `latitude`,
  TRY_CAST(`longitude` AS DOUBLE) AS `longitude`,
  TRY_CAST(`sensor_type` AS STRING) AS `sensor_type`,
  TRY_CAST(`_source_object` AS STRING) AS `source_object`,
  TRY_CAST(`id` AS BIGINT) AS `source_id`,
  TRY_CAST(`_partition_hour` AS TIMESTAMP) AS `_partition_hour`,
  'filtered' AS source_scenario,
  5 AS _priority
FROM `bronze_filtered`
WHERE
  _partition_hour >= :start AND _partition_hour < :end;

-- silver: select from bronze_raw
SELECT
  TRY_CAST(`_node_id` AS STRING) AS `node_id`,
  TRY_CAST(`_region` AS STRING) AS `region`,
  TRY_CAST(`sensor_id` AS STRING) AS `sensor_id`,
  TRY_CAST(`timestamp` AS TIMESTAMP) AS `event_time`,
  TRY_CAST(`temperature` AS DOUBLE) AS `temperature`,
  TRY_CAST(`humidity` AS DOUBLE) AS `humidity`,
  TRY_CAST(`pressure` AS DOUBLE) AS `pressure`,
  TRY_CAST(`vibration` AS DOUBLE) AS `vibration`,
  TRY_CAST(`voltage` AS DOUBLE) AS `voltage`,
  TRY_CAST(`status_code` AS BIGINT) AS `status_code`,
  TRY_CAST(`anomaly_flag` AS BIGINT) AS `anomaly_flag`,
  TRY_CAST(`anomaly_type` AS STRING) AS `anomaly_type`,
  TRY_CAST(`emergency_reason` AS STRING) AS `emergency_reason`,
  TRY_CAST(`firmware_version` AS STRING) AS `firmware_version`,
  TRY_CAST(`model` AS STRING) AS `model`,
  TRY_CAST(`manufacturer` AS STRING) AS `manufacturer`,
  TRY_CAST(`location` AS STRING) AS `location`,
  TRY_CAST(`latitude` AS DOUBLE) AS `latitude`,
  TRY_CAST(`longitude` AS DOUBLE) AS `longitude`,
  TRY_CAST(`sensor_type` AS STRING) AS `sensor_type`,
  TRY_CAST(`_source_object` AS STRING) AS `source_object`,
  TRY_CAST(`id` AS BIGINT) AS `source_id`,
  TRY_CAST(`_partition_hour` AS TIMESTAMP) AS `_partition_hour`,
  'raw' AS source_scenario,
  2 AS _priority
FROM `bronze_raw`
WHERE
  _partition_hour >= :start AND _partition_hour < :end;

-- silver: select from bronze_regional
SELECT
  TRY_CAST(`_node_id` AS STRING) AS `node_id`,
  TRY_CAST(`_region` AS STRING) AS `region`,
  TRY_CAST(`sensor_id` AS STRING) AS `sensor_id`,
  TRY_CAST(`timestamp` AS TIMESTAMP) AS `event_time`,
  TRY_CAST(`temperature` AS DOUBLE) AS `temperature`,
  TRY_CAST(`humidity` AS DOUBLE) AS `humidity`,
  TRY_CAST(`pressure` AS DOUBLE) AS `pressure`,
  TRY_CAST(`vibration` AS DOUBLE) AS `vibration`,
  TRY_CAST(`voltage` AS DOUBLE) AS `voltage`,
  TRY_CAST(`status_code` AS BIGINT) AS `status_code`,
  TRY_CAST(`anomaly_flag` AS BIGINT) AS `anomaly_flag`,
  TRY_CAST(`anomaly_type` AS STRING) AS `anomaly_type`,
  TRY_CAST(`emergency_reason` AS STRING) AS `emergency_reason`,
  TRY_CAST(`firmware_version` AS STRING) AS `firmware_version`,
  TRY_CAST(`model` AS STRING) AS `model`,
  TRY_CAST(`manufacturer` AS STRING) AS `manufacturer`,
  TRY_CAST(`location` AS STRING) AS `location`,
  TRY_CAST(`latitude` AS DOUBLE) AS `latitude`,
  TRY_CAST(`longitude` AS DOUBLE) AS `longitude`,
  TRY_CAST(`sensor_type` AS STRING) AS `sensor_type`,
  TRY_CAST(`_source_object` AS STRING) AS `source_object`,
  TRY_CAST(`id` AS BIGINT) AS `source_id`,
  TRY_CAST(`_partition_hour` AS TIMESTAMP) AS `_partition_hour`,
  'regional' AS source_scenario,
  3 AS _priority
FROM `bronze_regional`
WHERE
  _partition_hour >= :start AND _partition_hour < :end;

-- silver: select from bronze_schematized
SELECT
  TRY_CAST(`_node_id` AS STRING) AS `node_id`,
  TRY_CAST(`_region` AS STRING) AS `region`,
  TRY_CAST(`sensor_id` AS STRING) AS `sensor_id`,
  TRY_CAST(`timestamp` AS TIMESTAMP) AS `event_time`,
  TRY_CAST(`temperature` AS DOUBLE) AS `temperature`,
  TRY_CAST(`humidity` AS DOUBLE) AS `humidity`,
  TRY_CAST(`pressure` AS DOUBLE) AS `pressure`,
  TRY_CAST(`vibration` AS DOUBLE) AS `vibration`,
  TRY_CAST(`voltage` AS DOUBLE) AS `voltage`,
  TRY_CAST(`status_code` AS BIGINT) AS `status_code`,
  TRY_CAST(`anomaly_flag` AS BIGINT) AS `anomaly_flag`,
  TRY_CAST(`anomaly_type` AS STRING) AS `anomaly_type`,
  TRY_CAST(`emergency_reason` AS STRING) AS `emergency_reason`,
  TRY_CAST(`firmware_version` AS STRING) AS `firmware_version`,
  TRY_CAST(`model` AS STRING) AS `model`,
  TRY_CAST(`manufacturer` AS STRING) AS `manufacturer`,
  TRY_CAST(`location` AS STRING) AS `location`,
  TRY_CAST(`latitude` AS DOUBLE) AS `latitude`,
  TRY_CAST(`longitude` AS DOUBLE) AS `longitude`,
  TRY_CAST(`sensor_type` AS STRING) AS `sensor_type`,
  TRY_CAST(`_source_object` AS STRING) AS `source_object`,
  TRY_CAST(`id` AS BIGINT) AS `source_id`,
  TRY_CAST(`_partition_hour` AS TIMESTAMP) AS `_partition_hour`,
  'schematized' AS source_scenario,
  1 AS _priority
FROM `bronze_schematized`
WHERE
  _partition_hour >= :start AND _partition_hour < :end;

-- silver: Delta write
-- {"mode": "overwrite", "options": {"mergeSchema": "true", "replaceWhere": "_partition_hour >= TIMESTAMP '2026-11-25 10:00:00' AND _partition_hour < TIMESTAMP '2026-11-25 12:00:00'"}, "table_properties": {}}
