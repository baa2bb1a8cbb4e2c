-- device_share: per day, which operating systems and device models do the events come from?
-- One row per day, OS and device model.
--   day           the calendar day
--   os            operating system (iOS, Android, HarmonyOS, ...); `(other)`: suppressed cells
--   device_model  device model as reported; `(other)`: suppressed cells
--   events        events of the day from that OS and model (devices_daily.events summed over OS versions)
--   share_of_day  events / all published events of the day (0..1)
-- Caveats: the `(other)` rows (cells under k people, rolled up per day) are included and count in
-- the day's total. `visitors` are not shown: distinct counts, not additive over OS versions.
SELECT day,
       os,
       device_model,
       sum(events)::BIGINT AS events,
       sum(events) / sum(sum(events)) OVER (PARTITION BY day) AS share_of_day
FROM devices_daily
GROUP BY day, os, device_model
ORDER BY day, events DESC, os, device_model
