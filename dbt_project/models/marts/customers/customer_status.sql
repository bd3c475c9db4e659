with

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),

strategies as (

    select * from {{ ref('status_strategies') }}

),

classified as (

    select
        customer_id,
        as_of_date,
        last_interaction_date,
        days_since_last_interaction,
        paid_orders,
        tenure_days,
        config_version,
        case
            when tenure_days < {{ var('new_customer_days') }} then 'new'
            when paid_orders = 0 then 'prospect'
            when days_since_last_interaction <= {{ var('status_active_max_days') }} then 'active'
            when days_since_last_interaction <= {{ var('status_dormant_max_days') }} then 'dormant'
            else 'churned'
        end as status

    from behaviour

),

explained as (

    select
        *,
        case status
            when 'new' then 'joined ' || tenure_days || ' days ago < {{ var("new_customer_days") }}'
            when 'prospect' then 'no net purchase as of ' || as_of_date
                || coalesce('; last interaction ' || last_interaction_date, '; no interaction')
            else 'last interaction ' || last_interaction_date || ', ' || days_since_last_interaction || ' days before '
                || as_of_date || case status
                    when 'active' then ' <= {{ var("status_active_max_days") }}'
                    when 'dormant' then ' in {{ var("status_active_max_days") + 1 }}-{{ var("status_dormant_max_days") }}'
                    else ' > {{ var("status_dormant_max_days") }}'
                end
        end as status_reason

    from classified

),

final as (

    select
        explained.customer_id,
        explained.as_of_date,
        explained.status,
        strategies.label_en as status_label_en,
        strategies.label_zh as status_label_zh,
        explained.last_interaction_date,
        explained.days_since_last_interaction,
        explained.status_reason,
        strategies.strategy_en,
        strategies.strategy_zh,
        explained.config_version

    from explained
    left join strategies on explained.status = strategies.status

)

select * from final
