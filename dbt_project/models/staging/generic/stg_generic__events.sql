{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}

with

source as (

    select
        raw_events.* replace (
            {{ normalize_customer_id('raw_events.customer_id', 'load_settings.id_normalize') }} as customer_id
        ),
        load_settings.timezone as source_timezone,
        -- events exported without an id are identified by their file and row
        coalesce(nullif(trim(raw_events.event_id), ''), raw_events._load_id || ':' || raw_events._row_number)
            as event_key
    from {{ source('generic', 'events') }} as raw_events
    {{ join_load_settings('raw_events') }}

),

{% if is_incremental() %}
changed_keys as (

    select distinct event_key
    from source
    where _load_seq > (select coalesce(max(load_seq), 0) from {{ this }})

),

candidates as (

    select source.*
    from source
    semi join changed_keys on source.event_key = changed_keys.event_key

),
{% else %}
candidates as (

    select * from source

),
{% endif %}

latest as (

    -- an event id repeated across exports loads once
    {{ latest_version('candidates', 'event_key') }}

),

renamed as (

    select
        event_key as event_id,
        trim(customer_id) as customer_id,
        {{ utc_timestamp('event_time', 'source_timezone') }} as event_at,
        {{ business_date('event_at') }} as event_date,  -- reuses the parsed event_at
        lower(trim(event_type)) as event_type,
        nullif(lower(trim(channel)), '') as channel,
        _source as source_system,
        _load_id as load_id,
        _load_seq as load_seq

    from latest

)

select * from renamed
