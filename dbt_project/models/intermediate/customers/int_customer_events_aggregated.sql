{%- set windows = var('behaviour_windows') -%}
with

events as (

    select * from {{ ref('stg_crm__events') }}

),

events_as_of as (

    select
        customer_id,
        event_type,
        event_date,
        date_diff('day', event_date, {{ as_of_date() }}) as days_ago

    from events
    where event_at < {{ as_of_end() }}

),

aggregated as (

    select
        customer_id,
        count(*) as events_total,
        {%- for window in windows %}
        count(*) filter (where days_ago < {{ window }}) as events_{{ window }}d,
        {%- for event_type in var('event_types') %}
        count(*) filter (where event_type = '{{ event_type }}' and days_ago < {{ window }})
            as {{ event_type }}_{{ window }}d,
        {%- endfor %}
        {%- endfor %}
        max(event_date) as last_event_date

    from events_as_of
    group by customer_id

)

select * from aggregated
