-- results no longer carry a label (kinds read their fields from the output)
alter table results drop column if exists label
