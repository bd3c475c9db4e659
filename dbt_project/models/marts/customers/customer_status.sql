{%- set gap_factor = var('at_risk_gap_factor') -%}
with

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),

strategies as (

    select * from {{ ref('status_strategies') }}

),

clv as (

    select * from {{ ref('customer_clv') }}

),

classified as (

    select
        *,
        case
            when tenure_days < {{ var('new_customer_days') }} then 'new'
            when paid_orders = 0 then 'prospect'
            when days_since_last_interaction <= {{ var('status_active_max_days') }} then 'active'
            when days_since_last_interaction <= {{ var('status_dormant_max_days') }} then 'dormant'
            else 'churned'
        end as status,
        -- the usual gap between purchases: median of the repeat buyers' own mean gaps
        median(case when purchase_days > 1 then avg_days_between_purchases end) over () as median_repeat_gap_days

    from behaviour

),

risk_inputs as (

    select
        classified.*,
        clv.p_alive,
        coalesce(clv.model_status, 'fallback_rules_only') as model_status,
        coalesce(classified.purchase_days, 0) = 1 as is_one_time_buyer,
        -- with no repeat buyer at all the usual gap is taken as the active window
        classified.median_repeat_gap_days is null as is_gap_defaulted,
        coalesce(classified.median_repeat_gap_days, {{ var('status_active_max_days') }}) as usual_gap_days,
        case
            when coalesce(classified.purchase_days, 0) = 0 then 'not_a_buyer'
            -- BG/NBD gives one-time buyers P(alive) = 1 by construction: their rule ignores it
            when classified.purchase_days = 1 then 'one_time_gap_rule'
            when clv.model_status = 'fitted' then 'p_alive'
            else 'own_gap_rule'
        end as at_risk_basis

    from classified
    left join clv on classified.customer_id = clv.customer_id

),

flagged as (

    select
        *,
        case at_risk_basis
            when 'p_alive' then p_alive < {{ var('at_risk_p_alive_below') }}
            when 'one_time_gap_rule' then days_since_last_purchase > {{ gap_factor }} * usual_gap_days
            when 'own_gap_rule' then days_since_last_purchase > {{ gap_factor }} * avg_days_between_purchases
            else false
        end as is_at_risk

    from risk_inputs

),

explained as (

    select
        *,
        {{ status_reason() }} as status_reason,
        {{ at_risk_reason(gap_factor) }} as at_risk_reason

    from flagged

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
        explained.is_at_risk,
        explained.at_risk_basis,
        explained.at_risk_reason,
        explained.p_alive,
        explained.is_one_time_buyer,
        explained.days_since_last_purchase,
        explained.config_version

    from explained
    left join strategies on explained.status = strategies.status

)

select * from final
