-- a warehouse written before real-time sends knew batches only
alter table batches add column if not exists mode varchar default 'batch'
