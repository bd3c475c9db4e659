{#- Why a customer has its tier (customer_tiers.tier_reason; documented in macros/_macros.yml).
    Reads the columns of scored_customers (tenure_days, has_returns_exceeding_purchases, returned_amount,
    purchased_amount, as_of_date, value_score, value_percentile, value_source, clv, r_score, f_score,
    m_score), attribute_tiers (attribute_tier, attribute_tier_reason) and matched_rule (tier, tier_cut);
    `currency_symbol` is an SQL expression for the base currency's symbol (seed currency_symbols). -#}
{% macro tier_reason(value_source, currency_symbol) -%}
    {%- set rule_cut = "' >= ' || matched_rule.tier || ' cut ' || printf('%.2f', matched_rule.tier_cut)
                || ' (" ~ var('tier_method') ~ ")'" -%}
    case
        when scored_customers.tenure_days < {{ var('new_customer_days') }}
            then 'joined ' || scored_customers.tenure_days || ' days ago < {{ var("new_customer_days") }}: too new to judge'
        when scored_customers.has_returns_exceeding_purchases
            then 'returns ' || {{ currency_symbol }} || format('{:,.2f}', scored_customers.returned_amount)
                || ' >= purchases ' || {{ currency_symbol }} || format('{:,.2f}', scored_customers.purchased_amount)
                || ' as of ' || scored_customers.as_of_date || ': no net purchase, lowest tier'
        when scored_customers.value_score is null and attribute_tiers.attribute_tier is not null
            then 'no net purchase as of ' || scored_customers.as_of_date || '; ' || attribute_tiers.attribute_tier_reason
        when scored_customers.value_score is null
            then 'no net purchase as of ' || scored_customers.as_of_date || ': lowest tier'
        {%- if value_source == 'clv' %}
        when scored_customers.value_source = 'clv'
            then 'CLV ' || {{ currency_symbol }} || format('{:,.0f}', scored_customers.clv)
                || ' (value score ' || printf('%.2f', scored_customers.value_score)
                || ', percentile ' || printf('%.3f', scored_customers.value_percentile) || ')'
                || {{ rule_cut }}
                || coalesce('; R=' || scored_customers.r_score || ' F=' || scored_customers.f_score
                    || ' M=' || scored_customers.m_score, '')
        {%- endif %}
        else {% if value_source == 'clv' %}'CLV model fell back to rules only (see clv_model_fits): rfm value score used; '
            || {% endif %}'R=' || scored_customers.r_score || ' F=' || scored_customers.f_score || ' M=' || scored_customers.m_score
            || '; value score ' || printf('%.2f', scored_customers.value_score)
            || ' (percentile ' || printf('%.3f', scored_customers.value_percentile) || ')'
            || {{ rule_cut }}
    end
{%- endmacro %}

{#- The symbol of var base_currency as an SQL expression, from `symbols` (a CTE of seed
    currency_symbols); a currency without a symbol is written as its code and a space. -#}
{% macro base_currency_symbol(symbols) -%}
    coalesce(
        (select max(symbol) from {{ symbols }} where currency = '{{ var("base_currency") }}'),
        '{{ var("base_currency") }} '
    )
{%- endmacro %}

{#- The value score tiers are cut on, per var tier_value_source: the RFM value score (`scores`), or the
    rank share of the CLV (`clv`) when both CLV models fitted; otherwise tiers keep their rfm meaning. -#}
{% macro tier_value_columns(value_source) -%}
    {%- if value_source == 'clv' -%}
        {%- set is_clv_fitted = "(select coalesce(bool_and(model_status = 'fitted'), false) from clv)" -%}
        clv.clv,
        case when {{ is_clv_fitted }} then 'clv' else 'rfm' end as value_source,
        case when {{ is_clv_fitted }} then clv.clv_score else scores.value_score end as value_score,
        case when {{ is_clv_fitted }} then clv.clv_percentile else scores.value_percentile end
            as value_percentile
    {%- else -%}
        cast(null as double) as clv,
        'rfm' as value_source,
        scores.value_score,
        scores.value_percentile
    {%- endif -%}
{%- endmacro %}
