-- parsed_results as a Parquet file (results/<batch_id>.parsed.parquet)
copy parsed_results to $out (format parquet, compression snappy, row_group_size 32768)
