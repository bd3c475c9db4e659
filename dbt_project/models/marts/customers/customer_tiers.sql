{%- set value_source = var_one_of('tier_value_source', ['rfm', 'clv']) -%}
{%- set tier_method = var_one_of('tier_method', ['percentile', 'threshold']) -%}
{#- threshold: absolute cuts of the value score; percentile: cuts of its percentile (seed tier_rules) -#}
{%- set metric_column = 'value_score' if tier_method == 'threshold' else 'value_percentile' -%}
{%- set cut_column = 'min_value_score' if tier_method == 'threshold' else 'min_percentile' -%}
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

status_labels as (

    select * from {{ ref('status_strategies') }}

),

currency_symbols as (

    select * from {{ ref('currency_symbols') }}

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
{%- endif %}

scored_customers as (

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
        {{ tier_value_columns(value_source) }}

    from customers
    left join scores on customers.customer_id = scores.customer_id
    left join behaviour on customers.customer_id = behaviour.customer_id
    {%- if value_source == 'clv' %}
    left join clv on customers.customer_id = clv.customer_id
    {%- endif %}

),

matched_rule as (

    -- the best tier whose cut the customer reaches
    select
        scored_customers.customer_id,
        tier_rules.tier,
        tier_rules.tier_rank,
        tier_rules.{{ cut_column }} as tier_cut

    from scored_customers
    inner join tier_rules on scored_customers.{{ metric_column }} >= tier_rules.{{ cut_column }}
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
        {{ tier_reason(value_source, base_currency_symbol('currency_symbols')) }} as tier_reason

    from scored_customers
    left join matched_rule on scored_customers.customer_id = matched_rule.customer_id
    left join attribute_tiers on scored_customers.customer_id = attribute_tiers.customer_id

),

final as (

    select
        placed.customer_id,
        placed.as_of_date,
        placed.tier,
        -- `new` is no value tier: it ranks before the best one and has the label of status `new`
        coalesce(tier_rules.tier_rank, case placed.tier
            when 'new' then (select min(all_tiers.tier_rank) - 1 from tier_rules as all_tiers)
            else (select max(all_tiers.tier_rank) from tier_rules as all_tiers)
        end) as tier_rank,
        coalesce(tier_rules.label_zh, status_labels.label_zh) as tier_label_zh,
        placed.r_score,
        placed.f_score,
        placed.m_score,
        placed.value_score,
        placed.value_percentile,
        '{{ tier_method }}' as tier_method,
        placed.value_source,
        placed.clv,
        placed.tier_cut,
        placed.tier_reason,
        tier_rules.service_en,
        tier_rules.service_zh,
        placed.config_version

    from placed
    left join tier_rules on placed.tier = tier_rules.tier
    left join status_labels on placed.tier = status_labels.status

)

select * from final
