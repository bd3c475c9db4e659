-- Optional customer fields that were present but could not be read: staging keeps the customer
-- with the field null, and this model keeps the value and why (reported per run in
-- var/reports/<as-of>/warnings.md and the quarantine report). Every loaded version of a row counts.
with

source as (

    select * from {{ source('crm', 'customers') }}

),

typed_fields as (

    -- generic files: values staging reads with the same macros as stg_crm__customers
    select
        _load_id,
        _source,
        _file_name,
        _row_number,
        customer_id,
        'birth_date' as field_name,
        birth_date as raw_value,
        'unreadable_date' as warning
    from source
    where nullif(trim(birth_date), '') is not null and {{ read_date('birth_date') }} is null

    union all

    select
        _load_id,
        _source,
        _file_name,
        _row_number,
        customer_id,
        'income' as field_name,
        income as raw_value,
        'not_a_number' as warning
    from source
    where nullif(trim(income), '') is not null and {{ read_number('income') }} is null

    union all

    select
        _load_id,
        _source,
        _file_name,
        _row_number,
        customer_id,
        'gender' as field_name,
        gender as raw_value,
        'unknown_gender' as warning
    from source
    where nullif(trim(gender), '') is not null and {{ read_gender('gender') }} is null

),

vendor_fields as (

    -- vendor files: values the mapping could not read, kept by ingest in _extra._invalid
    select
        source._load_id,
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
