-- a warehouse written before kinds could send several requests per row
alter table outcomes add column if not exists request varchar default ''
