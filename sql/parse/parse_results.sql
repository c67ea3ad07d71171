-- one row per line of results/<batch_id>.jsonl, typed, with the structured
-- output validated and an outcome for retry decisions, written to
-- results/<batch_id>.parsed.parquet
copy (
    with

    raw_results as (
        select
            custom_id,
            result
        from read_json(
            $raw,
            format = 'newline_delimited',
            columns = {
                'custom_id': 'varchar',
                'result': 'struct(
                    type varchar,
                    message struct(
                        id varchar,
                        model varchar,
                        content struct(
                            type varchar, text varchar, input json
                        )[],
                        stop_reason varchar,
                        usage struct(
                            input_tokens bigint,
                            output_tokens bigint,
                            cache_creation_input_tokens bigint,
                            cache_read_input_tokens bigint,
                            cache_creation struct(
                                ephemeral_5m_input_tokens bigint,
                                ephemeral_1h_input_tokens bigint
                            ),
                            service_tier varchar
                        )
                    ),
                    error struct(
                        type varchar,
                        error struct(type varchar, message varchar)
                    )
                )'
            }
        )
    ),

    flattened as (
        select
            custom_id,
            result.type as result_type,
            result.type = 'succeeded' as is_succeeded,
            result.message.id as message_id,
            result.message.model as model,
            coalesce(
                list_filter(
                    result.message.content, lambda b: b.type = 'tool_use'
                )[1].input::varchar,
                nullif(
                    array_to_string(
                        list_transform(
                            list_filter(
                                result.message.content,
                                lambda b: b.type = 'text'
                            ),
                            lambda b: b.text
                        ),
                        ''
                    ),
                    ''
                )
            ) as text,
            result.message.stop_reason as stop_reason,
            result.message.usage as usage,
            result.error.error.type as error_type,
            result.error.error.message as error_message
        from raw_results
    ),

    -- older responses lack the cache fields: 0 for succeeded requests, null
    -- otherwise; without the per-TTL split, all cache writes count as 5m
    -- writes (the default TTL)
    usage_columns as (
        select
            *,
            if(
                is_succeeded, coalesce(usage.input_tokens, 0), null
            ) as input_tokens,
            if(
                is_succeeded, coalesce(usage.output_tokens, 0), null
            ) as output_tokens,
            if(
                is_succeeded,
                coalesce(usage.cache_creation_input_tokens, 0),
                null
            ) as cache_creation_input_tokens,
            if(
                is_succeeded,
                coalesce(
                    usage.cache_creation.ephemeral_5m_input_tokens,
                    usage.cache_creation_input_tokens
                    - coalesce(
                        usage.cache_creation.ephemeral_1h_input_tokens, 0
                    ),
                    0
                ),
                null
            ) as cache_write_5m_tokens,
            if(
                is_succeeded,
                coalesce(usage.cache_creation.ephemeral_1h_input_tokens, 0),
                null
            ) as cache_write_1h_tokens,
            if(
                is_succeeded, coalesce(usage.cache_read_input_tokens, 0), null
            ) as cache_read_input_tokens,
            usage.service_tier as service_tier
        from flattened
    ),

    json_kinds as (
        select
            *,
            case when json_valid(text) then json_type(text) end as json_kind
        from usage_columns
    ),

    raw_labels as (
        select
            *,
            case
                when json_kind = 'OBJECT' then text ->> '$.label'
            end as raw_label
        from json_kinds
    ),

    checked as (
        select
            *,
            case
                when not is_succeeded then null
                when stop_reason = 'refusal' then 'refusal'
                when
                    stop_reason
                    in ('max_tokens', 'model_context_window_exceeded')
                    then 'stop_reason ' || stop_reason || ': output truncated'
                when text is null then 'no text or tool_use output'
                when json_kind is null then 'not JSON'
                when json_kind <> 'OBJECT' then 'not a JSON object'
                when $labels is null then null
                when raw_label is null then 'no ''label'' field in the output'
                when not list_contains($labels, raw_label)
                    then 'label ''' || raw_label || ''' is not one of ['
                    || array_to_string(
                        list_transform(
                            $labels, lambda l: '''' || l || ''''
                        ),
                        ', '
                    )
                    || ']'
            end as invalid_reason
        from raw_labels
    ),

    final as (
        select
            $batch_id as batch_id,
            custom_id,
            $job_name as job_name,
            result_type,
            message_id,
            model,
            text,
            stop_reason,
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_write_5m_tokens,
            cache_write_1h_tokens,
            cache_read_input_tokens,
            service_tier,
            error_type,
            error_message,
            if(
                is_succeeded and invalid_reason is null and $labels is not null,
                raw_label,
                null
            ) as label,
            if(is_succeeded, invalid_reason is null, null) as output_valid,
            invalid_reason,
            case
                when is_succeeded and invalid_reason is null then 'succeeded'
                when is_succeeded then 'invalid_output'
                when
                    result_type = 'errored'
                    and error_type = 'invalid_request_error'
                    then 'failed'
                else 'retriable'
            end as outcome
        from checked
    )

    select * from final
) to $out (format parquet, compression snappy, row_group_size 32768)
