{#- Reasons of customer_status, one sentence per row saying which rule placed it (documented in
    macros/_macros.yml). They read the columns of the model's CTE they are called in. -#}

{#- Why a customer has its status: columns status, tenure_days, as_of_date, last_interaction_date,
    days_since_last_interaction; thresholds from the status vars. -#}
{% macro status_reason() -%}
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
    end
{%- endmacro %}

{#- Why a customer is (not) at risk: columns at_risk_basis, is_at_risk, model_status, as_of_date, p_alive,
    purchase_days, days_since_last_purchase, usual_gap_days, is_gap_defaulted,
    avg_days_between_purchases; `gap_factor` is var at_risk_gap_factor. -#}
{% macro at_risk_reason(gap_factor) -%}
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
    end
{%- endmacro %}
