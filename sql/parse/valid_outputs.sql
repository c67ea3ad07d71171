-- the parsed outputs that passed the SQL checks, for the full-schema
-- validation in Python (halfrate/full_checks.py)
select
    custom_id,
    text
from parsed_results
where outcome = 'succeeded'
