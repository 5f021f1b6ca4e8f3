-- Fleet app: sensors that went quiet, longest first
SELECT node_id, sensor_id, region, last_reading_at,
       datediff(current_date(), CAST(last_reading_at AS DATE)) AS days_silent,
       nvl(last_temperature, 0.0) AS last_temperature
FROM gold_fleet_health
WHERE status = 'silent'
ORDER BY last_reading_at
LIMIT 100
