-- os_share: per day, which operating systems do the events come from?
-- One row per day and OS.
--   day           the calendar day
--   os            operating system (iOS, Android, HarmonyOS, ...); `(other)`: suppressed cells
--   events        events of the day from that OS (devices_daily.events summed over models and versions)
--   share_of_day  events / all published events of the day (0..1)
-- Caveats: the `(other)` row (cells under k people, rolled up per day) is included and counts in the
-- day's total; an OS's suppressed models are in it, not in the OS's row. `visitors` are not shown:
-- distinct counts, not additive over models.
SELECT day,
       os,
       sum(events)::BIGINT AS events,
       sum(events) / sum(sum(events)) OVER (PARTITION BY day) AS share_of_day
FROM devices_daily
GROUP BY day, os
ORDER BY day, events DESC, os
