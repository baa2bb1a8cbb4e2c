-- retention_matrix: of the people who first came in a week, how many came back in each later week?
-- One row per cohort week and weeks since (the cohort triangle, long form).
--   cohort_week      the Monday of the week of a consenting visitor's first visit (last 12 weeks)
--   weeks_since      0 for the cohort's own week, 1 for the week after, ...
--   visitors         the cohort's visitors who visited (with consent) that week
--   cohort_visitors  the cohort's visitors in week 0 (its size)
--   share_of_cohort  visitors / cohort_visitors (0..1); NULL when week 0 is not published
-- Caveats: cells of fewer than k people are not published (no `(other)` row here), so a missing
-- (cohort_week, weeks_since) means under k or none. `visitors` are distinct counts, not additive: never
-- sum them across weeks or cohorts.
SELECT r.cohort_week,
       r.weeks_since,
       r.visitors,
       w0.visitors AS cohort_visitors,
       r.visitors / w0.visitors AS share_of_cohort
FROM retention_weekly r
LEFT JOIN retention_weekly w0 ON w0.cohort_week = r.cohort_week AND w0.weeks_since = 0
ORDER BY r.cohort_week, r.weeks_since
