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

repeat_gap as (

    -- the usual gap between purchases: median of the repeat buyers' own mean gaps
    select median(avg_days_between_purchases) as median_repeat_gap_days
    from behaviour
    where purchase_days > 1

),

classified as (

    select
        customer_id,
        as_of_date,
        last_interaction_date,
        days_since_last_interaction,
        paid_orders,
        purchase_days,
        days_since_last_purchase,
        avg_days_between_purchases,
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

risk_inputs as (

    select
        explained.*,
        clv.p_alive,
        coalesce(clv.model_status, 'fallback_rules_only') as model_status,
        coalesce(explained.purchase_days, 0) = 1 as is_one_time_buyer,
        -- with no repeat buyer at all the usual gap is taken as the active window
        repeat_gap.median_repeat_gap_days is null as is_gap_defaulted,
        coalesce(repeat_gap.median_repeat_gap_days, {{ var('status_active_max_days') }}) as usual_gap_days,
        case
            when coalesce(explained.purchase_days, 0) = 0 then 'not_a_buyer'
            -- BG/NBD gives one-time buyers P(alive) = 1 by construction: their rule ignores it
            when explained.purchase_days = 1 then 'one_time_gap_rule'
            when clv.model_status = 'fitted' then 'p_alive'
            else 'own_gap_rule'
        end as at_risk_basis

    from explained
    left join clv on explained.customer_id = clv.customer_id
    cross join repeat_gap

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

risk_explained as (

    select
        *,
        case when at_risk_basis in ('one_time_gap_rule', 'own_gap_rule') and model_status <> 'fitted'
            then 'model fell back to rules only (see clv_model_fits), rule only: '
            else ''
        end
        || case at_risk_basis
            when 'not_a_buyer' then 'no net purchase as of ' || as_of_date || ': nothing to lose'
            when 'p_alive' then 'P(alive) ' || printf('%.3f', p_alive)
                || case when is_at_risk then ' < ' else ' >= ' end || '{{ var("at_risk_p_alive_below") }}'
                || ' (BG/NBD, ' || (purchase_days - 1) || ' repeat purchase days)'
            when 'one_time_gap_rule' then 'one-time buyer (P(alive) = 1 means nothing): '
                || days_since_last_purchase || ' days since the only purchase'
                || case when is_at_risk then ' > ' else ' <= ' end
                || '{{ gap_factor }} x ' || case when is_gap_defaulted
                    then 'active window {{ var("status_active_max_days") }} days (no repeat buyers)'
                    else 'median repeat gap ' || printf('%.1f', usual_gap_days) || ' days'
                end
                || ' = ' || printf('%.1f', {{ gap_factor }} * usual_gap_days)
            else days_since_last_purchase || ' days since the last purchase'
                || case when is_at_risk then ' > ' else ' <= ' end
                || '{{ gap_factor }} x own mean gap ' || printf('%.1f', avg_days_between_purchases) || ' days'
                || ' = ' || printf('%.1f', {{ gap_factor }} * avg_days_between_purchases)
        end as at_risk_reason

    from flagged

),

final as (

    select
        risk_explained.customer_id,
        risk_explained.as_of_date,
        risk_explained.status,
        strategies.label_en as status_label_en,
        strategies.label_zh as status_label_zh,
        risk_explained.last_interaction_date,
        risk_explained.days_since_last_interaction,
        risk_explained.status_reason,
        strategies.strategy_en,
        strategies.strategy_zh,
        risk_explained.is_at_risk,
        risk_explained.at_risk_basis,
        risk_explained.at_risk_reason,
        risk_explained.p_alive,
        risk_explained.is_one_time_buyer,
        risk_explained.days_since_last_purchase,
        risk_explained.config_version

    from risk_explained
    left join strategies on risk_explained.status = strategies.status

)

select * from final
