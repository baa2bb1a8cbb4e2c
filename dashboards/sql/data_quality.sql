-- data_quality: per ingest run, how clean was what came in, and how much do the tables hold back?
-- One row per ingest run, oldest first.
--   run_id, started_at, finished_at  the run and when it started and committed
--   messages          Kafka messages read
--   valid             messages that passed validation
--   deadletters       messages routed to the dead letters (see deadletter_counts for the reasons)
--   duplicates        valid events already stored (a re-sent beacon), not counted twice
--   too_late          valid beacons of days already closed when they came: counted here, applied nowhere
--   deadletter_share  deadletters / messages
--   suppressed_share  the warehouse's overall share, now, of what its cells counted that is in no
--                     published row (1 - published / counted of coverage_daily, all tables and days;
--                     the `(other)` rows count as published); the same on every row
-- Caveats: suppressed_share pools different units (views, clicks, events, sessions, visitors) into one
-- rough figure; coverage_daily has it per table and day.
SELECT r.run_id,
       r.started_at,
       r.finished_at,
       r.messages,
       r.valid,
       r.deadletters,
       r.duplicates,
       r.too_late,
       r.deadletters / nullif(r.messages, 0) AS deadletter_share,
       q.suppressed_share
FROM ingest_runs r
CROSS JOIN (SELECT 1 - sum(published) / nullif(sum(counted), 0) AS suppressed_share FROM coverage_daily) q
ORDER BY r.started_at, r.run_id
