-- the batch's parsed results (sql/parse/parse_results.sql) into results
insert into results by name
select *
from parsed_results
