with

customers as (

    select * from {{ ref('dim_customers') }}

),

scores as (

    select * from {{ ref('customer_value_scores') }}

),

tier_rules as (

    select * from {{ ref('tier_rules') }}

),

scored_customers as (

    select
        customers.customer_id,
        customers.as_of_date,
        customers.tenure_days,
        customers.config_version,
        scores.r_score,
        scores.f_score,
        scores.m_score,
        scores.value_score,
        scores.value_percentile,
        {% if var('tier_method') == 'threshold' -%}
        scores.value_score as tier_metric
        {%- elif var('tier_method') == 'percentile' -%}
        scores.value_percentile as tier_metric
        {%- else -%}
        {{ exceptions.raise_compiler_error("var tier_method must be 'percentile' or 'threshold', got " ~ var('tier_method')) }}
        {%- endif %}

    from customers
    left join scores on customers.customer_id = scores.customer_id

),

matched_rule as (

    -- the best tier whose cut the customer reaches
    select
        scored_customers.customer_id,
        tier_rules.tier,
        tier_rules.tier_rank,
        {% if var('tier_method') == 'threshold' -%}
        tier_rules.min_value_score as tier_cut
        {%- else -%}
        tier_rules.min_percentile as tier_cut
        {%- endif %}

    from scored_customers
    inner join tier_rules
        on scored_customers.tier_metric >= {% if var('tier_method') == 'threshold' %}tier_rules.min_value_score{% else %}tier_rules.min_percentile{% endif %}
    qualify row_number() over (partition by scored_customers.customer_id order by tier_rules.tier_rank) = 1

),

placed as (

    select
        scored_customers.*,
        case
            when scored_customers.tenure_days < {{ var('new_customer_days') }} then 'new'
            when scored_customers.value_score is null then 'low'
            else matched_rule.tier
        end as tier,
        matched_rule.tier_cut,
        case
            when scored_customers.tenure_days < {{ var('new_customer_days') }}
                then 'joined ' || scored_customers.tenure_days || ' days ago < {{ var("new_customer_days") }}: too new to judge'
            when scored_customers.value_score is null
                then 'no net purchase as of ' || scored_customers.as_of_date || ': lowest tier'
            else 'R=' || scored_customers.r_score || ' F=' || scored_customers.f_score || ' M=' || scored_customers.m_score
                || '; value score ' || printf('%.2f', scored_customers.value_score)
                || ' (percentile ' || printf('%.3f', scored_customers.value_percentile) || ')'
                || ' >= ' || matched_rule.tier || ' cut ' || printf('%.2f', matched_rule.tier_cut)
                || ' ({{ var("tier_method") }})'
        end as tier_reason

    from scored_customers
    left join matched_rule on scored_customers.customer_id = matched_rule.customer_id

),

final as (

    select
        placed.customer_id,
        placed.as_of_date,
        placed.tier,
        coalesce(tier_rules.tier_rank, case placed.tier when 'new' then 0 else 4 end) as tier_rank,
        coalesce(tier_rules.label_zh, '新客户') as tier_label_zh,
        placed.r_score,
        placed.f_score,
        placed.m_score,
        placed.value_score,
        placed.value_percentile,
        '{{ var("tier_method") }}' as tier_method,
        placed.tier_cut,
        placed.tier_reason,
        tier_rules.service_en,
        tier_rules.service_zh,
        placed.config_version

    from placed
    left join tier_rules on placed.tier = tier_rules.tier

)

select * from final
