-- a warehouse written before kinds could send several requests per row
alter table requests add column if not exists request varchar default ''
