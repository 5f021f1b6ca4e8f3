-- Dashboard: anomaly rate per region and hour over the last week
SELECT region, hour, readings, nodes, sensors,
       ROUND(CAST(anomaly_rate * 100 AS DECIMAL(9, 4)), 2) AS anomaly_pct,
       IF(anomaly_rate > 0.05, 'high', 'normal') AS level
FROM gold_region_hourly_stats
WHERE hour >= date_sub(current_date(), 7)
ORDER BY hour DESC, region
