-- one row per line of results/<batch_id>.jsonl, typed, with the output
-- checked against the job kind's output schema ($checks, $paths, $root_keys;
-- nothing but non-empty text when $json_output is false) and an outcome for retry
-- decisions ($truncated_outcome: what a truncated output is, by the job's kind),
-- in the temporary table parsed_results of the connection: the load inserts it
-- into results (the raw JSONL is read once, straight into the warehouse)
create or replace temp table parsed_results as

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

-- the output checks of the job's kind (halfrate/output_checks.py), one row:
-- one list per field, so a check's lambda reads only the fields it needs
-- (copying whole check structs per row cost ~25% of the parse); enum values
-- normalised by DuckDB's own JSON writer, as the outputs' values are
spec as (
    select
        checks,
        list_transform(checks, lambda c: c.required) as required,
        list_transform(checks, lambda c: c.parent) as parent,
        list_transform(checks, lambda c: c.types) as types,
        list_transform(
            checks,
            lambda c: list_transform(c.enum, lambda e: json(e)::varchar)
        ) as enum_json,
        list_transform(checks, lambda c: c.keys) as keys,
        list_transform(checks, lambda c: c.item_types) as item_types,
        list_transform(checks, lambda c: c.min_value) as min_value,
        list_transform(checks, lambda c: c.min_exclusive) as min_exclusive,
        list_transform(checks, lambda c: c.max_value) as max_value,
        list_transform(checks, lambda c: c.max_exclusive) as max_exclusive
    from (
        select
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
            )[] as checks
    )
),

-- a valid JSON document is an object when it starts with { (cheaper than
-- json_type, which parses it again)
json_kinds as (
    select
        *,
        case
            when $json_output and json_valid(text)
                then if(ltrim(text, e' \t\n\r')[1] = '{', 'OBJECT', 'OTHER')
        end as json_kind
    from usage_columns
),

-- every checked path of an object output, extracted in one pass
output_values as (
    select
        *,
        case
            when json_kind = 'OBJECT' and len($paths) > 0
                then json_extract(text, $paths::varchar[])
        end as checked_values
    from json_kinds
),

-- each checked value's JSON type, parsed once
output_types as (
    select
        *,
        list_transform(checked_values, lambda v: json_type(v)) as checked_types
    from output_values
),

-- per check, what is wrong with its value (null: nothing)
failures as (
    select
        output_types.*,
        case when checked_values is not null then list_transform(
            range(1, len(checked_values) + 1),
            lambda i: case
                when checked_values[i] is null
                    then if(
                        spec.required[i]
                        and (
                            spec.parent[i] = 0
                            or checked_values[spec.parent[i]] is not null
                        ),
                        'missing',
                        null
                    )
                when
                    spec.types[i] is not null
                    and not list_contains(spec.types[i], checked_types[i])
                    then 'type'
                when
                    spec.enum_json[i] is not null
                    and not list_contains(spec.enum_json[i], checked_values[i]::varchar)
                    then 'enum'
                when
                    spec.keys[i] is not null
                    and checked_types[i] = 'OBJECT'
                    and len(
                        list_filter(
                            json_keys(checked_values[i]),
                            lambda k: not list_contains(spec.keys[i], k)
                        )
                    ) > 0
                    then 'key'
                when
                    spec.item_types[i] is not null
                    and checked_types[i] = 'ARRAY'
                    and len(
                        list_filter(
                            json_extract(checked_values[i], '$[*]'),
                            lambda e: not list_contains(
                                spec.item_types[i], json_type(e)
                            )
                        )
                    ) > 0
                    then 'item'
                when
                    checked_types[i] in ('BIGINT', 'UBIGINT', 'DOUBLE')
                    and (
                        checked_values[i]::double < spec.min_value[i]
                        or (
                            spec.min_exclusive[i]
                            and checked_values[i]::double = spec.min_value[i]
                        )
                        or checked_values[i]::double > spec.max_value[i]
                        or (
                            spec.max_exclusive[i]
                            and checked_values[i]::double = spec.max_value[i]
                        )
                    )
                    then 'range'
            end
        ) end as check_failures
    from output_types, spec
),

first_failures as (
    select
        failures.*,
        list_position(
            list_transform(check_failures, lambda f: f is not null), true
        ) as failed_check
    from failures
),

failed as (
    select
        first_failures.*,
        check_failures[failed_check] as failure,
        spec.checks[failed_check] as failed,
        checked_values[failed_check] as failed_value,
        case
            when json_kind = 'OBJECT' and $root_keys is not null
                then
                    list_filter(
                        json_keys(text),
                        lambda k: not list_contains($root_keys::varchar[], k)
                    )[1]
        end as unexpected_key
    from first_failures, spec
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
            when failure = 'missing'
                then 'no ''' || failed.name || ''' field in the output'
            when failure = 'type'
                then failed.name || ' is '
                || map {
                    'VARCHAR': 'a string',
                    'BIGINT': 'an integer',
                    'UBIGINT': 'an integer',
                    'DOUBLE': 'a number',
                    'BOOLEAN': 'a boolean',
                    'NULL': 'null',
                    'ARRAY': 'an array',
                    'OBJECT': 'an object'
                }[json_type(failed_value)]
                || ', expected ' || failed.expected
            when failure in ('enum', 'range')
                then failed.name || ' '
                || if(
                    json_type(failed_value) = 'VARCHAR',
                    '''' || (failed_value ->> '$') || '''',
                    failed_value::varchar
                )
                || if(
                    failure = 'enum',
                    ' is not one of ' || failed.enum_display,
                    ' is out of range (' || failed.range_display || ')'
                )
            when failure = 'key'
                then 'unexpected key '''
                || list_filter(
                    json_keys(failed_value),
                    lambda k: not list_contains(failed.keys, k)
                )[1]
                || ''' in ' || failed.name
            when failure = 'item'
                then failed.name || ' has an item that is '
                || map {
                    'VARCHAR': 'a string',
                    'BIGINT': 'an integer',
                    'UBIGINT': 'an integer',
                    'DOUBLE': 'a number',
                    'BOOLEAN': 'a boolean',
                    'NULL': 'null',
                    'ARRAY': 'an array',
                    'OBJECT': 'an object'
                }[
                    list_filter(
                        list_transform(
                            json_extract(failed_value, '$[*]'),
                            lambda e: json_type(e)
                        ),
                        lambda t: not list_contains(failed.item_types, t)
                    )[1]
                ]
                || ', expected ' || failed.item_expected
            when unexpected_key is not null
                then 'unexpected key ''' || unexpected_key || ''' in the output'
        end as invalid_reason
    from failed
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
            when
                is_succeeded
                and stop_reason
                in ('max_tokens', 'model_context_window_exceeded')
                then $truncated_outcome
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
