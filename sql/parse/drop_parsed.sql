-- done with a batch's parsed_results
drop table if exists parsed_results
