{%- set weights = var('rfm_weights') -%}
{%- set weight_sum = weights.recency + weights.frequency + weights.monetary -%}
{%- set scoring = var_one_of('rfm_scoring', ['quantile', 'threshold']) -%}
with

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),
{%- if scoring == 'threshold' %}

thresholds as (

    -- absolute cuts per score (seed rfm_thresholds), read only when rfm_scoring = threshold
    select * from {{ ref('rfm_thresholds') }}

),
{%- endif %}

buyers as (

    -- RFM ranks customers who bought (net of refunds and returns) in the window; others get no score
    select
        customer_id,
        as_of_date,
        days_since_last_purchase as recency_days,
        rfm_frequency as frequency,
        rfm_monetary as monetary,
        config_version

    from behaviour
    where rfm_frequency > 0
        and has_returns_exceeding_purchases is not true  -- no net purchase: not ranked

),

ranked as (

    select
        *,
        {{ midrank_percentile('recency_days', higher_is_better=false) }} as r_percentile,
        {{ midrank_percentile('frequency') }} as f_percentile,
        {{ midrank_percentile('monetary') }} as m_percentile

    from buyers

),

scored as (
    {%- if scoring == 'threshold' %}

    -- the highest score whose absolute cut the customer reaches; score 1 is the floor
    select
        ranked.*,
        {{ threshold_score('ranked.recency_days <= thresholds.recency_days_max or thresholds.recency_days_max is null') }}
            as r_score,
        {{ threshold_score('ranked.frequency >= thresholds.frequency_min') }} as f_score,
        {{ threshold_score('ranked.monetary >= thresholds.monetary_min') }} as m_score

    from ranked
    left join thresholds on true  -- an empty seed leaves every score at the floor, not the customer out
    group by all
    {%- else %}

    select
        *,
        {{ quantile_score('recency_days', higher_is_better=false) }} as r_score,
        {{ quantile_score('frequency') }} as f_score,
        {{ quantile_score('monetary') }} as m_score

    from ranked
    {%- endif %}

),

valued as (

    select
        *,
        r_score::varchar || f_score::varchar || m_score::varchar as rfm_cell,
        -- weighted mean of the percentiles, not of the 1-5 scores: 13 score levels would tie
        -- far more than 5% of customers at the top and leave the VIP tier empty
        -- (with either rfm_scoring: threshold scores change the scores and segments, not the tiers)
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
        '{{ scoring }}' as rfm_scoring,
        config_version

    from valued

)

select * from final
