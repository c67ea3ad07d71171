-- one row per line of results/<batch_id>.jsonl, typed, with the output
-- checked against the job kind's output schema ($checks, $paths; nothing but
-- non-empty text when $json_output is false) and an outcome for retry
-- decisions, written to results/<batch_id>.parsed.parquet
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

    -- the output checks of the job's kind (halfrate/output_checks.py): one
    -- row; enum values normalised by DuckDB's own JSON writer, as outputs are
    spec as (
        select
            list_transform(
                $checks::struct(
                    name varchar,
                    path varchar,
                    parent integer,
                    required boolean,
                    types varchar[],
                    expected varchar,
                    enum varchar[],
                    enum_display varchar,
                    range_display varchar,
                    min_value double,
                    min_exclusive boolean,
                    max_value double,
                    max_exclusive boolean,
                    keys varchar[],
                    item_types varchar[],
                    item_expected varchar
                )[],
                lambda c: struct_insert(
                    c,
                    enum_json := list_transform(
                        c.enum, lambda e: json(e)::varchar
                    )
                )
            ) as checks
    ),

    json_kinds as (
        select
            *,
            case
                when $json_output and json_valid(text) then json_type(text)
            end as json_kind
        from usage_columns
    ),

    -- every checked path of an object output, extracted in one pass
    output_values as (
        select
            *,
            case
                when json_kind = 'OBJECT' then json_extract(text, $paths)
            end as checked_values
        from json_kinds
    ),

    failures as (
        select
            output_values.*,
            case when checked_values is not null then list_filter(
                list_transform(
                    list_zip(spec.checks, checked_values),
                    lambda p: {
                        'check': p[1],
                        'value': p[2],
                        'failure': case
                            when p[2] is null
                                then if(
                                    p[1].required
                                    and (
                                        p[1].parent = 0
                                        or checked_values[p[1].parent]
                                        is not null
                                    ),
                                    'missing',
                                    null
                                )
                            when
                                p[1].types is not null
                                and not list_contains(p[1].types, json_type(p[2]))
                                then 'type'
                            when
                                p[1].enum_json is not null
                                and not list_contains(p[1].enum_json, p[2]::varchar)
                                then 'enum'
                            when
                                json_type(p[2]) not in ('BIGINT', 'UBIGINT', 'DOUBLE')
                                then if(
                                    p[1].keys is not null
                                    and json_type(p[2]) = 'OBJECT'
                                    and len(
                                        list_filter(
                                            json_keys(p[2]),
                                            lambda k: not list_contains(p[1].keys, k)
                                        )
                                    ) > 0,
                                    'key',
                                    if(
                                        p[1].item_types is not null
                                        and json_type(p[2]) = 'ARRAY'
                                        and len(
                                            list_filter(
                                                json_extract(p[2], '$[*]'),
                                                lambda e: not list_contains(
                                                    p[1].item_types, json_type(e)
                                                )
                                            )
                                        ) > 0,
                                        'item',
                                        null
                                    )
                                )
                            when
                                p[2]::double < p[1].min_value
                                or (p[1].min_exclusive and p[2]::double = p[1].min_value)
                                then 'minimum'
                            when
                                p[2]::double > p[1].max_value
                                or (p[1].max_exclusive and p[2]::double = p[1].max_value)
                                then 'maximum'
                        end
                    }
                ),
                lambda f: f.failure is not null
            )[1] end as failure
        from output_values, spec
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
                when not $json_output then null
                when json_kind is null then 'not JSON'
                when json_kind <> 'OBJECT' then 'not a JSON object'
                when failure is null then null
                when failure.failure = 'missing'
                    then 'no ''' || failure.check.name || ''' field in the output'
                when failure.failure = 'type'
                    then failure.check.name || ' is '
                    || map {
                        'VARCHAR': 'a string',
                        'BIGINT': 'an integer',
                        'UBIGINT': 'an integer',
                        'DOUBLE': 'a number',
                        'BOOLEAN': 'a boolean',
                        'NULL': 'null',
                        'ARRAY': 'an array',
                        'OBJECT': 'an object'
                    }[json_type(failure.value)]
                    || ', expected ' || failure.check.expected
                when failure.failure = 'enum'
                    then failure.check.name || ' '
                    || if(
                        json_type(failure.value) = 'VARCHAR',
                        '''' || (failure.value ->> '$') || '''',
                        failure.value::varchar
                    )
                    || ' is not one of ' || failure.check.enum_display
                when failure.failure = 'key'
                    then 'unexpected key '''
                    || list_filter(
                        json_keys(failure.value),
                        lambda k: not list_contains(failure.check.keys, k)
                    )[1]
                    || ''' in ' || failure.check.name
                when failure.failure = 'item'
                    then failure.check.name || ' has an item that is '
                    || map {
                        'VARCHAR': 'a string',
                        'BIGINT': 'an integer',
                        'UBIGINT': 'an integer',
                        'DOUBLE': 'a number',
                        'BOOLEAN': 'a boolean',
                        'NULL': 'null',
                        'ARRAY': 'an array',
                        'OBJECT': 'an object'
                    }[list_filter(
                            list_transform(
                                json_extract(failure.value, '$[*]'),
                                lambda e: json_type(e)
                            ),
                            lambda t: not list_contains(failure.check.item_types, t)
                        )[1]]
                    || ', expected ' || failure.check.item_expected
                else
                    failure.check.name || ' ' || if(
                        json_type(failure.value) = 'VARCHAR',
                        '''' || (failure.value ->> '$') || '''',
                        failure.value::varchar
                    )
                    || ' is out of range (' || failure.check.range_display || ')'
            end as invalid_reason
        from failures
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
