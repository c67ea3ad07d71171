-- a warehouse written before job kinds: its labels table becomes outcomes rows
-- (the label goes back into the output it came from)
insert into outcomes by name
select
    job_name,
    row_id,
    custom_id,
    batch_id,
    attempt,
    result_type,
    outcome,
    if(output_valid, json_object('label', label)::varchar, null) as output,
    output_valid,
    invalid_reason,
    error_type,
    error_message
from labels
