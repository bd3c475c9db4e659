with

fitted as (

    select * from {{ ref('int_customer_clv_fitted') }}

),

fits as (

    select
        model,
        params,
        log_likelihood,
        n_customers,
        converged,
        message

    from fitted
    where record_type = 'fit'

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        model,
        params,
        log_likelihood,
        n_customers as customers_used,
        converged,
        message,
        -- the run's outcome, the same on both rows: a BG/NBD fit without a spend model is not used
        case when bool_and(converged) over () then 'fitted' else 'fallback_rules_only' end as model_status,
        {{ var('clv_horizon_days') }} as horizon_days,
        {{ var('clv_discount_rate_annual') }} as discount_rate_annual,
        {{ var('clv_min_customers') }} as min_customers,
        {{ var('clv_min_repeat_buyers') }} as min_repeat_buyers,
        {{ var('clv_min_history_days') }} as min_history_days,
        {{ var('clv_penalizer') }} as penalizer,
        {{ config_version() }} as config_version

    from fits

)

select * from final
