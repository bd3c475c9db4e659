{#- Why a customer's row changed between two as-of dates (customer_transitions.reason; documented in
    macros/_macros.yml): one clause per change, joined by '; '. Reads the columns of the model's
    compared rows: is_*_changed flags, from_/to_ values, the current row's status_reason, tier_reason
    and at_risk_reason, and both config versions (a config change is named, since it may be the cause). -#}
{% macro transition_reason() -%}
    concat_ws('; ',
        case when is_status_changed
            then 'status ' || from_status || ' → ' || to_status || ': ' || coalesce(status_reason, '?')
        end,
        case when is_tier_changed
            then 'tier ' || from_tier || ' → ' || to_tier || ': ' || coalesce(tier_reason, '?')
        end,
        case when is_at_risk_changed
            then case when to_is_at_risk then 'at risk: ' else 'no longer at risk: ' end
                || coalesce(at_risk_reason, '?')
        end,
        case when is_config_changed
            then 'config changed ' || coalesce(from_config_version, '?') || ' → ' || config_version
                || ' (the change may come from the configuration, not from behaviour)'
        end
    )
{%- endmacro %}
