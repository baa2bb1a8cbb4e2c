-- page_funnel: per page and day, how often does a page view lead to a click?
-- One row per day and page with published views or clicks.
--   day                 the calendar day
--   page                the page (path); `(other)` holds the cells suppressed under k, see below
--   views               page views (page_views_daily.views; 0 when none was published)
--   clicks              clicks on the page's elements (clicks_daily summed over elements; 0 when none)
--   click_through_rate  clicks / views: clicks per view (can exceed 1: a view can lead to several
--                       clicks); NULL when no views were published
-- Caveats: the `(other)` rows are included. A page's views and its clicks are suppressed separately:
-- clicks of a (page, element) cell under k people count in the `(other)` row, not the page's, so a
-- page's clicks here are a lower bound and the `(other)` row is no real funnel. `visitors` are not
-- shown: distinct counts, not additive over elements.
WITH v AS (SELECT day, page, views FROM page_views_daily),
     c AS (SELECT day, page, sum(clicks)::BIGINT AS clicks FROM clicks_daily GROUP BY day, page)
SELECT day,
       page,
       coalesce(v.views, 0) AS views,
       coalesce(c.clicks, 0) AS clicks,
       coalesce(c.clicks, 0) / nullif(v.views, 0) AS click_through_rate
FROM v FULL JOIN c USING (day, page)
ORDER BY day, page
