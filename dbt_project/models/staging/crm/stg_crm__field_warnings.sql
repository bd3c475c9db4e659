-- Optional customer fields that were present but could not be read: staging keeps the customer
-- with the field null, and this model keeps the value and why (reported per run in
-- var/reports/<as-of>/warnings.md and the quarantine report). Every loaded version of a row counts,
-- so a run adds the warnings of the loads the table has not seen, replacing any of the same load (a
-- retraction drops staging: the next run rebuilds it).
{{ config(materialized='incremental', unique_key='load_id', incremental_strategy='delete+insert') }}

with

source as (

    select * from {{ source('crm', 'customers') }}
    {%- if is_incremental() and 'load_seq' in (adapter.get_columns_in_relation(this) | map(attribute='name')) %}
    -- loads after the newest with a warning here: those between had none, and read again add none
    -- (a table from before load_seq was kept reads every load: all its rows are replaced)
    where _load_seq > (select coalesce(max(load_seq), 0) from {{ this }})
    {%- endif %}

),

typed_fields as (

    -- generic files: values staging reads with the same macros as stg_crm__customers
    {%- for optional in [
        {'field': 'birth_date', 'reader': read_date, 'warning': 'unreadable_date'},
        {'field': 'income', 'reader': read_number, 'warning': 'not_a_number'},
        {'field': 'gender', 'reader': read_gender, 'warning': 'unknown_gender'},
    ] %}
    select
        _load_id,
        _load_seq,
        _source,
        _file_name,
        _row_number,
        customer_id,
        '{{ optional.field }}' as field_name,
        {{ optional.field }} as raw_value,
        '{{ optional.warning }}' as warning
    from source
    where
        nullif(trim({{ optional.field }}), '') is not null
        and {{ optional.reader(optional.field) }} is null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

vendor_fields as (

    -- vendor files: values the mapping could not read, kept by ingest in _extra._invalid
    select
        source._load_id,
        source._load_seq,
        source._source,
        source._file_name,
        source._row_number,
        source.customer_id,
        invalid.key as field_name,
        invalid.value ->> '$' as raw_value,
        'invalid_value' as warning
    from source, json_each(source._extra, '$._invalid') as invalid
    where source._extra like '%"_invalid"%'

),

final as (

    select
        _load_id as load_id,
        _load_seq as load_seq,
        _source as source_system,
        _file_name as file_name,
        _row_number as row_number,
        customer_id,
        field_name,
        raw_value,
        warning
    from typed_fields

    union all

    select
        _load_id,
        _load_seq,
        _source,
        _file_name,
        _row_number,
        customer_id,
        field_name,
        raw_value,
        warning
    from vendor_fields

)

select * from final
