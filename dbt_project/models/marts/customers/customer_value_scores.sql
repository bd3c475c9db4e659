{%- set weights = var('rfm_weights') -%}
{%- set weight_sum = weights.recency + weights.frequency + weights.monetary -%}
with

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),

buyers as (

    -- RFM ranks customers who bought (net of refunds) in the window; others get no score
    select
        customer_id,
        as_of_date,
        days_since_last_purchase as recency_days,
        rfm_frequency as frequency,
        rfm_monetary as monetary,
        config_version

    from behaviour
    where rfm_frequency > 0

),

scored as (

    select
        *,
        {{ midrank_percentile('recency_days', higher_is_better=false) }} as r_percentile,
        {{ midrank_percentile('frequency') }} as f_percentile,
        {{ midrank_percentile('monetary') }} as m_percentile,
        {{ quantile_score('recency_days', higher_is_better=false) }} as r_score,
        {{ quantile_score('frequency') }} as f_score,
        {{ quantile_score('monetary') }} as m_score

    from buyers

),

valued as (

    select
        *,
        r_score::varchar || f_score::varchar || m_score::varchar as rfm_cell,
        -- weighted mean of the percentiles, not of the 1-5 scores: 13 score levels would tie
        -- far more than 5% of customers at the top and leave the VIP tier empty
        round((
            {{ weights.recency }} * r_percentile
            + {{ weights.frequency }} * f_percentile
            + {{ weights.monetary }} * m_percentile
        ) / {{ weight_sum }}, 6) as value_score

    from scored

),

final as (

    select
        customer_id,
        as_of_date,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        rfm_cell,
        round(r_percentile, 6) as r_percentile,
        round(f_percentile, 6) as f_percentile,
        round(m_percentile, 6) as m_percentile,
        value_score,
        -- share of scored customers with a strictly lower value score: ties never split a tier
        (rank() over (order by value_score) - 1) / count(*) over () as value_percentile,
        config_version

    from valued

)

select * from final
