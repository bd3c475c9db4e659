{%- set value_source = var('tier_value_source') -%}
{%- if value_source not in ('rfm', 'clv') -%}
{{ exceptions.raise_compiler_error("var tier_value_source must be 'rfm' or 'clv', got " ~ value_source) }}
{%- endif -%}
{%- set currency_symbol = {'CNY': '¥', 'USD': '$', 'EUR': '€', 'HKD': 'HK$'}.get(var('base_currency'), var('base_currency') ~ ' ') -%}
with

customers as (

    select * from {{ ref('dim_customers') }}

),

scores as (

    select * from {{ ref('customer_value_scores') }}

),

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),

tier_rules as (

    select * from {{ ref('tier_rules') }}

),

attribute_tiers as (

    -- customers matching an attribute rule (seed tier_attribute_rules): used where purchases are absent
    select * from {{ ref('int_customer_attribute_tiers') }}

),
{%- if value_source == 'clv' %}

clv as (

    -- read only when tier_value_source = clv
    select * from {{ ref('customer_clv') }}

),

clv_model as (

    -- CLV is the value score only when both models fitted; otherwise tiers keep their rfm meaning
    select coalesce(bool_and(model_status = 'fitted'), false) as is_clv_fitted
    from clv

),
{%- endif %}

value_basis as (

    select
        customers.customer_id,
        customers.as_of_date,
        customers.tenure_days,
        customers.config_version,
        scores.r_score,
        scores.f_score,
        scores.m_score,
        behaviour.has_returns_exceeding_purchases,
        behaviour.purchased_amount,
        behaviour.returned_amount,
        {%- if value_source == 'clv' %}
        clv.clv,
        case when clv_model.is_clv_fitted then 'clv' else 'rfm' end as value_source,
        case when clv_model.is_clv_fitted then clv.clv_score else scores.value_score end as value_score,
        case when clv_model.is_clv_fitted then clv.clv_percentile else scores.value_percentile end
            as value_percentile
        {%- else %}
        cast(null as double) as clv,
        'rfm' as value_source,
        scores.value_score,
        scores.value_percentile
        {%- endif %}

    from customers
    left join scores on customers.customer_id = scores.customer_id
    left join behaviour on customers.customer_id = behaviour.customer_id
    {%- if value_source == 'clv' %}
    left join clv on customers.customer_id = clv.customer_id
    cross join clv_model
    {%- endif %}

),

scored_customers as (

    select
        *,
        {% if var('tier_method') == 'threshold' -%}
        value_score as tier_metric
        {%- elif var('tier_method') == 'percentile' -%}
        value_percentile as tier_metric
        {%- else -%}
        {{ exceptions.raise_compiler_error("var tier_method must be 'percentile' or 'threshold', got " ~ var('tier_method')) }}
        {%- endif %}

    from value_basis

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
            when scored_customers.has_returns_exceeding_purchases then 'low'
            when scored_customers.value_score is null then coalesce(attribute_tiers.attribute_tier, 'low')
            else matched_rule.tier
        end as tier,
        matched_rule.tier_cut,
        case
            when scored_customers.tenure_days < {{ var('new_customer_days') }}
                then 'joined ' || scored_customers.tenure_days || ' days ago < {{ var("new_customer_days") }}: too new to judge'
            when scored_customers.has_returns_exceeding_purchases
                then 'returns {{ currency_symbol }}' || format('{:,.2f}', scored_customers.returned_amount)
                    || ' >= purchases {{ currency_symbol }}' || format('{:,.2f}', scored_customers.purchased_amount)
                    || ' as of ' || scored_customers.as_of_date || ': no net purchase, lowest tier'
            when scored_customers.value_score is null and attribute_tiers.attribute_tier is not null
                then 'no net purchase as of ' || scored_customers.as_of_date || '; ' || attribute_tiers.attribute_tier_reason
            when scored_customers.value_score is null
                then 'no net purchase as of ' || scored_customers.as_of_date || ': lowest tier'
            {%- if value_source == 'clv' %}
            when scored_customers.value_source = 'clv'
                then 'CLV {{ currency_symbol }}' || format('{:,.0f}', scored_customers.clv)
                    || ' (value score ' || printf('%.2f', scored_customers.value_score)
                    || ', percentile ' || printf('%.3f', scored_customers.value_percentile) || ')'
                    || ' >= ' || matched_rule.tier || ' cut ' || printf('%.2f', matched_rule.tier_cut)
                    || ' ({{ var("tier_method") }})'
                    || coalesce('; R=' || scored_customers.r_score || ' F=' || scored_customers.f_score
                        || ' M=' || scored_customers.m_score, '')
            {%- endif %}
            else {% if value_source == 'clv' %}'CLV model fell back to rules only (see clv_model_fits): rfm value score used; '
                || {% endif %}'R=' || scored_customers.r_score || ' F=' || scored_customers.f_score || ' M=' || scored_customers.m_score
                || '; value score ' || printf('%.2f', scored_customers.value_score)
                || ' (percentile ' || printf('%.3f', scored_customers.value_percentile) || ')'
                || ' >= ' || matched_rule.tier || ' cut ' || printf('%.2f', matched_rule.tier_cut)
                || ' ({{ var("tier_method") }})'
        end as tier_reason

    from scored_customers
    left join matched_rule on scored_customers.customer_id = matched_rule.customer_id
    left join attribute_tiers on scored_customers.customer_id = attribute_tiers.customer_id

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
        placed.value_source,
        placed.clv,
        placed.tier_cut,
        placed.tier_reason,
        tier_rules.service_en,
        tier_rules.service_zh,
        placed.config_version

    from placed
    left join tier_rules on placed.tier = tier_rules.tier

)

select * from final
