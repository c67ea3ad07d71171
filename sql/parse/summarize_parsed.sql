-- one row: the counts of parsed_results and the checks for loading it
select
    count(*) as rows,
    count(distinct custom_id) as distinct_custom_ids,
    count(*) filter (where custom_id is null) as missing_custom_ids,
    count(*) filter (
        where result_type is null
        or result_type not in ('succeeded', 'errored', 'canceled', 'expired')
    ) as unknown_result_types,
    count(*) filter (where result_type = 'succeeded') as succeeded,
    count(*) filter (where result_type = 'errored') as errored,
    count(*) filter (where result_type = 'canceled') as canceled,
    count(*) filter (where result_type = 'expired') as expired,
    count(*) filter (where outcome = 'succeeded') as valid_outputs,
    count(*) filter (where outcome = 'invalid_output') as invalid_outputs,
    count(*) filter (where outcome = 'truncated') as truncated,
    count(*) filter (where outcome = 'retriable') as retriable,
    count(*) filter (where outcome = 'failed') as failed
from parsed_results
