{#- Notes of customer_clv saying what the models could say about a customer (documented in
    macros/_macros.yml). They read the columns of the model's ranked CTE. -#}

{#- What P(alive) means here: columns is_one_time_buyer, model_status, frequency. -#}
{% macro clv_p_alive_note() -%}
    case
        when is_one_time_buyer
            then 'one-time buyer: BG/NBD gives P(alive) = 1 by construction, which is not evidence of activity; '
                || 'see customer_status.is_at_risk'
        when model_status = 'fitted' then 'BG/NBD P(alive) from ' || frequency || ' repeat purchase days'
        else 'no P(alive): model fell back to rules only'
    end
{%- endmacro %}

{#- Whether and why the customer is in the Gamma-Gamma fit: columns in_gamma_gamma, is_one_time_buyer,
    monetary_value, model_status. -#}
{% macro clv_gamma_gamma_note() -%}
    case
        when in_gamma_gamma then 'in the Gamma-Gamma fit (repeat buyer with positive net spend)'
        else 'left out of Gamma-Gamma: '
            || case
                when is_one_time_buyer then 'one-time buyer, no repeat spend'
                when monetary_value is null then 'repeat spend unknown (currency without fx rate)'
                else 'net repeat spend <= 0'
            end
            || case when model_status = 'fitted' then '; expected order value = population mean' else '' end
    end
{%- endmacro %}
