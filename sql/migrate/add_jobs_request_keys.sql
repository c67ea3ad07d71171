-- a warehouse written before kinds could send several requests per row
alter table jobs add column if not exists request_keys varchar [] default ['']
