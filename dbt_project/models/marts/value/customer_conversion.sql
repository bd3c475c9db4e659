{%- set windows = var('behaviour_windows') -%}
{%- set visit_types = var('conversion_visit_event_types') -%}
with

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),

counted as (

    select
        customer_id,
        as_of_date,
        {%- for window in windows %}
        {%- for event_type in visit_types %}
        {{ '' if loop.first else '+ ' }}{{ event_type }}_{{ window }}d
        {%- endfor %} as visits_{{ window }}d,
        paid_orders_{{ window }}d as purchases_{{ window }}d,
        {%- endfor %}
        config_version

    from behaviour

),

final as (

    select
        customer_id,
        as_of_date,
        {%- for window in windows %}
        visits_{{ window }}d,
        purchases_{{ window }}d,
        -- paid orders per visit; null without a visit (orders placed offline can push it above 1)
        case
            when visits_{{ window }}d > 0 then round(purchases_{{ window }}d / visits_{{ window }}d, 6)
        end as conversion_rate_{{ window }}d,
        visits_{{ window }}d > 0 and purchases_{{ window }}d > 0 as is_converted_{{ window }}d,
        {%- endfor %}
        config_version

    from counted

)

select * from final
