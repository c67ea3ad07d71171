-- the outputs of a parsed results file that passed the SQL checks, for the
-- full-schema validation in Python (halfrate/full_checks.py)
select
    custom_id,
    text
from read_parquet($path)
where outcome = 'succeeded'
