-- audience_share: per day, who are the consenting visitors, one profile dimension at a time?
-- One row per day, dimension (gender, country, city, language) and value.
--   day         the calendar day
--   dimension   gender | country | city | language
--   value       the dimension's value; NULL: not known (visitors not signed in); `(other)`: the
--               day's cells suppressed under k people
--   visitors    consenting visitors of the day with that value (audience_daily.visitors summed over
--               the cells that have it)
--   share       visitors / all published visitors of the day (0..1), per dimension
-- Caveats: the `(other)` rows are included. `visitors` are distinct counts per cell, not additive in
-- general; summing them over a day's cells is exact only while each person has one profile per day
-- (someone whose profile changed that day counts twice). Never sum `visitors` across days or
-- dimensions.
WITH cells AS (
    SELECT day, 'gender' AS dimension, gender AS value, visitors FROM audience_daily
    UNION ALL SELECT day, 'country', country, visitors FROM audience_daily
    UNION ALL SELECT day, 'city', city, visitors FROM audience_daily
    UNION ALL SELECT day, 'language', language, visitors FROM audience_daily
)
SELECT day,
       dimension,
       value,
       sum(visitors)::BIGINT AS visitors,
       sum(visitors) / sum(sum(visitors)) OVER (PARTITION BY day, dimension) AS share
FROM cells
GROUP BY day, dimension, value
ORDER BY day, dimension, visitors DESC, value
