with

summary as (

    select * from {{ ref('int_customer_purchase_summary') }}

),

fitted as (

    select * from {{ ref('int_customer_clv_fitted') }}

),

customer_scores as (

    select
        customer_id,
        p_alive,
        expected_purchases_90d,
        expected_order_value,
        clv,
        is_one_time_buyer,
        in_gamma_gamma,
        model_status

    from fitted
    where record_type = 'customer'

),

fit_messages as (

    -- why the models fitted or fell back, repeated on every customer row
    select string_agg(model || ': ' || message, '; ' order by model) as model_message
    from fitted
    where record_type = 'fit'

),

joined as (

    select
        summary.customer_id,
        summary.as_of_date,
        summary.frequency,
        summary.recency_days,
        summary.t_days,
        summary.monetary_value,
        summary.net_spend,
        customer_scores.p_alive,
        customer_scores.expected_purchases_90d,
        customer_scores.expected_order_value,
        customer_scores.clv,
        customer_scores.is_one_time_buyer,
        customer_scores.in_gamma_gamma,
        customer_scores.model_status,
        fit_messages.model_message,
        summary.config_version

    from summary
    left join customer_scores on summary.customer_id = customer_scores.customer_id
    cross join fit_messages

),

ranked as (

    select
        *,
        -- share of customers with a CLV at or below this one (0-1]: the CLV value score of tiers
        case when clv is not null then cume_dist() over (partition by clv is null order by clv) end as clv_score,
        -- share with a strictly lower CLV, like value_percentile of the RFM scores
        case
            when clv is not null
                then (rank() over (partition by clv is null order by clv) - 1)
                    / count(*) over (partition by clv is null)
        end as clv_percentile,
        {{ clv_p_alive_note() }} as p_alive_note,
        {{ clv_gamma_gamma_note() }} as gamma_gamma_note

    from joined

),

final as (

    select
        customer_id,
        as_of_date,
        frequency,
        recency_days,
        t_days,
        monetary_value,
        net_spend,
        p_alive,
        expected_purchases_90d,
        expected_order_value,
        clv,
        clv_score,
        clv_percentile,
        is_one_time_buyer,
        in_gamma_gamma,
        model_status,
        p_alive_note,
        gamma_gamma_note,
        model_message,
        config_version

    from ranked

)

select * from final
