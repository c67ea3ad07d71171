-- after copy_labels_to_outcomes: `labels` becomes a view over outcomes
drop table labels
