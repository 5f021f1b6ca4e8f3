-- Fleet app: how many sensors and nodes are ok or silent
SELECT status, COUNT(*) AS sensors, COUNT(DISTINCT node_id) AS nodes,
       MAX(last_reading_at) AS newest_reading
FROM gold_fleet_health
GROUP BY status
ORDER BY status
