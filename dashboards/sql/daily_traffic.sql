-- daily_traffic: how much traffic did each day have?
-- One row per calendar day (in the warehouse's time zone) with any published page view, click or session.
--   day                      the calendar day
--   views                    page views that day: page_views_daily.views summed over pages, the `(other)` row included
--   clicks                   clicks that day: clicks_daily.clicks summed over pages and elements, `(other)` included
--   sessions                 sessions that started that day (sessions_daily)
--   bounce_rate              share (0..1) of those sessions with at most one page view
--   avg_session_duration_ms  mean time on pages per session (from page leaves)
-- Caveats: 0 or NULL means nothing was published for the day in that table: no traffic, or all of it
-- stood on fewer than k people. Page leaves are not sent by every visitor (a closed tab sends none), so
-- there is no "exits" figure. Distinct visitors are left out on purpose: `visitors` of the aggregate
-- tables are distinct counts per cell, not additive: never sum them across pages, cells or days.
WITH v AS (SELECT day, sum(views)::BIGINT AS views FROM page_views_daily GROUP BY day),
     c AS (SELECT day, sum(clicks)::BIGINT AS clicks FROM clicks_daily GROUP BY day),
     s AS (SELECT day, sessions, bounce_rate, avg_session_duration_ms FROM sessions_daily)
SELECT day,
       coalesce(v.views, 0) AS views,
       coalesce(c.clicks, 0) AS clicks,
       coalesce(s.sessions, 0) AS sessions,
       s.bounce_rate,
       s.avg_session_duration_ms
FROM v FULL JOIN c USING (day) FULL JOIN s USING (day)
ORDER BY day
