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

{#- Every row of `history` (customer_id, as_of_date, ...) that can be the latest earlier row of a row on one
    of `target_dates` (effective_date): all rows on the history date just before each target date (of
    `history_dates`), and the other rows of the customers missing on that date (new ones, or absent that
    day). An ASOF join over these gives what one over all of history gives, reading two dates. -#}
{% macro rows_that_can_precede(history, history_dates, target_dates) -%}
    with previous_dates as (
        select
            {{ target_dates }}.effective_date,
            max({{ history_dates }}.as_of_date) as previous_date
        from {{ target_dates }}
        inner join {{ history_dates }} on {{ history_dates }}.as_of_date < {{ target_dates }}.effective_date
        group by {{ target_dates }}.effective_date
    ),

    rows_on_previous_dates as (
        select {{ history }}.*
        from {{ history }}
        semi join previous_dates on {{ history }}.as_of_date = previous_dates.previous_date
    ),

    customers_missing_on_previous_date as (
        select current_rows.customer_id
        from {{ history }} as current_rows
        inner join previous_dates on current_rows.as_of_date = previous_dates.effective_date
        anti join rows_on_previous_dates
            on current_rows.customer_id = rows_on_previous_dates.customer_id
            and previous_dates.previous_date = rows_on_previous_dates.as_of_date
    )

    select * from rows_on_previous_dates
    union all
    select {{ history }}.*
    from {{ history }}
    semi join customers_missing_on_previous_date
        on {{ history }}.customer_id = customers_missing_on_previous_date.customer_id
    anti join previous_dates on {{ history }}.as_of_date = previous_dates.previous_date
{%- endmacro %}
