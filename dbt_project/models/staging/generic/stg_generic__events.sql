with

source as (

    select * from {{ source('generic', 'events') }}

),

latest as (

    select *
    from source
    -- events without an id are kept as they come; ids repeated across exports load once
    qualify event_id is null or trim(event_id) = ''
        or row_number() over (
            partition by event_id
            order by _exported_at desc, _load_seq desc, _row_number desc
        ) = 1

),

renamed as (

    select
        coalesce(nullif(trim(event_id), ''), load_id_row) as event_id,
        trim(customer_id) as customer_id,
        cast(event_time as timestamp) as event_at,
        cast(cast(event_time as timestamp) as date) as event_date,
        lower(trim(event_type)) as event_type,
        nullif(lower(trim(channel)), '') as channel,
        _source as source_system,
        _load_id as load_id

    from (select *, _load_id || ':' || _row_number as load_id_row from latest)

)

select * from renamed
