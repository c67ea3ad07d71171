-- the outputs that failed the full-schema validation (the registered
-- full_check_failures: custom_id, reason) marked invalid_output in
-- parsed_results, to be asked again
update parsed_results
set
    output_valid = false,
    invalid_reason = failures.reason,
    outcome = 'invalid_output'
from full_check_failures as failures
where parsed_results.custom_id = failures.custom_id
