{%- set windows = var('behaviour_windows') -%}
{#- windows moved by the day: only customers whose sums can have changed are recomputed (moving_windows.sql) -#}
{%- set key = windows_key(['behaviour_windows', 'event_types']) -%}
{%- set last_build = windows_last_build(ref('int_customer_daily_events'), key) -%}
with

daily_events as (

    select * from {{ ref('int_customer_daily_events') }}

),

{%- if last_build is not none %}

moved_customers as materialized (

    -- only on a build that starts from the last one: the customers whose sums can have changed
    {{ customers_whose_windows_moved(last_build, 'daily_events', windows) }}

),
{%- endif %}

days_as_of as (

    select
        customer_id,
        event_type,
        events,
        activity_date,
        date_diff('day', activity_date, {{ as_of_date() }}) as days_ago

    from daily_events {{ only_moved_customers(last_build, 'moved_customers', 'daily_events.customer_id') }}
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

),

final as (

    {{ rows_moved_and_kept(last_build, 'aggregated', 'moved_customers', 'daily_events', key) }}

)

select * from final
