-- Sensor page: the last 24 hourly rows of one sensor
SELECT hour, readings, avg_temperature, min_temperature, max_temperature, anomaly_rate
FROM gold_sensor_hourly_stats
WHERE sensor_id = (SELECT MAX(sensor_id) FROM gold_sensor_hourly_stats)
ORDER BY hour DESC
LIMIT 24
