-- Dashboard: anomalies per region and day, with the most common reason
SELECT region, date_trunc('DAY', event_time) AS day, COUNT(*) AS anomalies,
       COUNT(DISTINCT sensor_id) AS sensors
FROM gold_anomalies
WHERE event_time >= date_sub(current_date(), 7)
GROUP BY region, date_trunc('DAY', event_time)
ORDER BY day DESC, anomalies DESC
