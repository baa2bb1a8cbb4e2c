-- weekly_traffic: how much traffic did each ISO week (Monday to Sunday) have?
-- One row per week with any published page view, click or session.
--   week_start  the Monday that starts the week
--   iso_week    the ISO 8601 week, e.g. 2026-W47
--   days        days of the week with any published figure
--   views       page views of the week (page_views_daily summed, the `(other)` rows included)
--   clicks      clicks of the week (clicks_daily summed, the `(other)` rows included)
--   sessions    sessions that started in the week (sessions_daily summed)
-- Caveats: what stood on fewer than k people on a day is in no figure. Weekly distinct visitors
-- cannot be had from the daily tables: `visitors` are distinct counts and are not additive.
WITH daily AS (
    SELECT day, views, 0 AS clicks, 0 AS sessions FROM page_views_daily
    UNION ALL SELECT day, 0, clicks, 0 FROM clicks_daily
    UNION ALL SELECT day, 0, 0, sessions FROM sessions_daily
)
SELECT date_trunc('week', day)::DATE AS week_start,
       strftime(date_trunc('week', day), '%G-W%V') AS iso_week,
       count(DISTINCT day) AS days,
       sum(views)::BIGINT AS views,
       sum(clicks)::BIGINT AS clicks,
       sum(sessions)::BIGINT AS sessions
FROM daily
GROUP BY ALL
ORDER BY week_start
