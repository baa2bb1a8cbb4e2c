-- top_pages: which pages are viewed most, over all days, and how long do visits last?
-- One row per page, most viewed first.
--   page             the page (path); `(other)` sums the day's cells suppressed under k people
--   views            page views over all days (page_views_daily.views summed)
--   days             days with a published row for the page
--   avg_duration_ms  mean visit duration (from page leaves), the days' averages weighted by their
--                    views; days whose average is NULL (fewer than k people left the page) are left
--                    out of it; NULL when every day's is
-- Caveats: the `(other)` row is included. Weighting by views approximates the mean over all page
-- leaves (not every view sends a leave). No visitors column: `visitors` are distinct counts per day,
-- not additive: never sum them across days.
SELECT page,
       sum(views)::BIGINT AS views,
       count(*) AS days,
       sum(avg_duration_ms * views) FILTER (WHERE avg_duration_ms IS NOT NULL)
           / nullif(sum(views) FILTER (WHERE avg_duration_ms IS NOT NULL), 0) AS avg_duration_ms
FROM page_views_daily
GROUP BY page
ORDER BY views DESC, page
