{%- set windows = var('behaviour_windows') -%}
with

daily_events as (

    select * from {{ ref('int_customer_daily_events') }}

),

days_as_of as (

    select
        customer_id,
        event_type,
        events,
        activity_date,
        date_diff('day', activity_date, {{ as_of_date() }}) as days_ago

    from daily_events
    where activity_date <= {{ as_of_date() }}

),

aggregated as (

    select
        customer_id,
        {{ activity_count('events') }} as events_total,
        {%- for window in windows %}
        {{ activity_count('events', 'days_ago < ' ~ window) }} as events_{{ window }}d,
        {%- for event_type in var('event_types') %}
        {{ activity_count('events', "event_type = '" ~ event_type ~ "' and days_ago < " ~ window) }}
            as {{ event_type }}_{{ window }}d,
        {%- endfor %}
        {%- endfor %}
        max(activity_date) as last_event_date

    from days_as_of
    group by customer_id

)

select * from aggregated
