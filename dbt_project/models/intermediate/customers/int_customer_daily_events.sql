{{ config(materialized='incremental', unique_key='customer_id', incremental_strategy='delete+insert') }}

with

events as (

    select * from {{ ref('stg_crm__events') }}

),

rebuilt_customers as materialized (

    -- every customer on a full build; those whose events changed since the last build otherwise (an
    -- event without an id is keyed by its customer, time and type: an earlier version has the same customer)
    {{ customers_to_rebuild('events', 'event_id', 'events', 'event_id') }}

),

daily as (

    -- one row per customer, day and event type
    select
        events.customer_id,
        events.event_date as activity_date,
        events.event_type,
        count(*) as events

    from events
    {%- if is_incremental() %}
    semi join rebuilt_customers on events.customer_id = rebuilt_customers.customer_id
    {%- endif %}
    group by events.customer_id, events.event_date, events.event_type

),

placeholders as (

    {{ placeholders_of_customers_without_activity('rebuilt_customers', 'daily') }}

),

rows_of_rebuilt_customers as (

    select * from daily
    union all by name
    select * from placeholders

),

final as (

    select
        *,
        (select coalesce(max(load_seq), 0) from events) as through_load_seq

    from rows_of_rebuilt_customers

)

select * from final
