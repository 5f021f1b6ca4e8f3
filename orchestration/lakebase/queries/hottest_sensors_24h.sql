-- Dashboard: the ten hottest sensors over the last day
SELECT sensor_id, ROUND(AVG(avg_temperature), 2) AS avg_temperature, SUM(readings) AS readings
FROM gold_sensor_hourly_stats
WHERE hour >= current_timestamp() - INTERVAL 24 HOURS
GROUP BY sensor_id
ORDER BY avg_temperature DESC
LIMIT 10
