{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}

with

source as not materialized (

    -- read where used: stored, it would hold all of raw (macros/latest_version.sql)
    select
        raw_events.* replace (
            {{ normalize_customer_id('raw_events.customer_id', 'load_settings.id_normalize') }} as customer_id
        ),
        load_settings.timezone as source_timezone,
        -- an event exported without an id is identified by what it records (customer, time, type,
        -- channel), so the same event delivered again in other bytes (CRLF, another file) counts once.
        -- case, not coalesce: DuckDB computes every argument of coalesce for every row, and the natural
        -- key (a time parse and an md5) is needed only without an id (W10, keys of 20M raw rows: -40%)
        case
            when trim(raw_events.event_id) <> '' then trim(raw_events.event_id)
            else {{ event_natural_key(
                normalize_customer_id('raw_events.customer_id', 'load_settings.id_normalize'),
                utc_timestamp('raw_events.event_time', 'load_settings.timezone'),
                'raw_events.event_type', 'raw_events.channel') }}
        end as event_key
    from {{ source('crm', 'events') }} as raw_events
    {{ join_load_settings('raw_events') }}

),

candidates as (

    -- every version of the keys touched by loads this table has not seen yet (all rows on a full build)
    {{ rows_of_changed_keys('source', 'event_key') }}

),

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
        _load_seq as load_seq,
        {{ staged_through_load_seq() }} as through_load_seq

    from latest

)

select * from renamed
