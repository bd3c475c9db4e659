{#- How customer_alerts matches a transition against a rule of seed alert_rules and says why
    (documented in macros/_macros.yml). `rule` and `transition` are the aliases of the rule and
    transition rows (columns of seed alert_rules and of customer_transitions). -#}

{#- The value of the rule's dimension on one side of the transition (`side`: from or to):
    status, tier, or at-risk as 'true'/'false' (unknown counts as false). -#}
{% macro alert_dimension_value(rule, transition, side) -%}
    case {{ rule }}.dimension
        when 'status' then {{ transition }}.{{ side }}_status
        when 'tier' then {{ transition }}.{{ side }}_tier
        else cast(coalesce({{ transition }}.{{ side }}_is_at_risk, false) as varchar)
    end
{%- endmacro %}

{#- Whether a rule fires on a transition: its dimension changed and the from/to values match the
    rule's cells (macro rule_value_matches); a tier rule's to_value may be `lower` or `higher`
    (by tier_rank, 1 = best; `new` is neither); the new tier must be in the rule's tier_scope. -#}
{% macro alert_rule_fires(rule, transition) -%}
    (
        {{ rule }}.dimension = 'status'
        and {{ transition }}.is_status_changed
        and {{ rule_value_matches(rule ~ '.from_value', transition ~ '.from_status') }}
        and {{ rule_value_matches(rule ~ '.to_value', transition ~ '.to_status') }}
    )
    or (
        {{ rule }}.dimension = 'tier'
        and {{ transition }}.is_tier_changed
        and {{ rule_value_matches(rule ~ '.from_value', transition ~ '.from_tier') }}
        and (
            case {{ rule }}.to_value
                when 'lower' then {{ transition }}.tier_direction = 'down'
                when 'higher' then {{ transition }}.tier_direction = 'up'
                else {{ rule_value_matches(rule ~ '.to_value', transition ~ '.to_tier') }}
            end
        )
    )
    or (
        {{ rule }}.dimension = 'at_risk'
        and {{ transition }}.is_at_risk_changed
        and {{ rule_value_matches(rule ~ '.from_value',
                                  'cast(coalesce(' ~ transition ~ '.from_is_at_risk, false) as varchar)') }}
        and {{ rule_value_matches(rule ~ '.to_value',
                                  'cast(coalesce(' ~ transition ~ '.to_is_at_risk, false) as varchar)') }}
    )
{%- endmacro %}

{#- Whether the customer has the contact the rule's channel needs (email; phone for sms and phone;
    any other channel needs the customer only). `customers` is the alias of stg_crm__customers. -#}
{% macro has_channel_contact(channel, customers) -%}
    case {{ channel }}
        when 'email' then {{ customers }}.email is not null
        when 'sms' then {{ customers }}.phone is not null
        when 'phone' then {{ customers }}.phone is not null
        else {{ customers }}.customer_id is not null
    end
{%- endmacro %}

{#- A rule as an alert's reason names it: rule_id (dimension from → to[, tiers scope], cooldown N days.
    `rule` is the alias of the alert_rules row. -#}
{% macro alert_rule_text(rule) -%}
    {{ rule }}.rule_id || ' (' || {{ rule }}.dimension || ' ' || {{ rule }}.from_value || ' → ' || {{ rule }}.to_value
        || case when {{ rule }}.tier_scope <> '*' then ', tiers ' || {{ rule }}.tier_scope else '' end
        || ', cooldown ' || {{ rule }}.cooldown_days || ' days'
{%- endmacro %}

{#- The alert's reason: the rule's text (macro alert_rule_text), the previous alert of the pair, then
    the transition's reason. `alert` is the alias of a row with rule_text, previous_alert_date and
    transition_reason. -#}
{% macro alert_reason(alert) -%}
    {{ alert }}.rule_text || coalesce(', previous alert ' || {{ alert }}.previous_alert_date, '') || '): '
        || {{ alert }}.transition_reason
{%- endmacro %}

{#- Alerts of other as-of dates than this run's (the cooldown looks at them both ways): of
    `alerts` (a relation) when given, else of this incremental model itself (none on its first
    build). -#}
{% macro alerts_of_other_dates(alerts=none) -%}
    {%- if alerts is not none or is_incremental() -%}
    select customer_id, rule_id, as_of_date
    from {{ alerts if alerts is not none else this }}
    where as_of_date <> {{ as_of_date() }}
    {%- else -%}
    select
        cast(null as varchar) as customer_id,
        cast(null as varchar) as rule_id,
        cast(null as date) as as_of_date
    where false
    {%- endif -%}
{%- endmacro %}

{#- The deterministic key of an alert: md5(customer_id|rule_id|as_of_date), the same on a re-run. -#}
{% macro alert_id(customer_id, rule_id, as_of_date) -%}
    md5({{ customer_id }} || '|' || {{ rule_id }} || '|' || strftime({{ as_of_date }}, '%Y-%m-%d'))
{%- endmacro %}

{#- This run's transitions that fire an enabled rule within its tier scope, one row per transition
    and rule: the matching customer_alerts and customer_alert_holds share. Reads the calling
    model's CTEs `transitions` (customer_transitions) and `rules` (seed alert_rules). -#}
{% macro alert_rule_matches() -%}
    select
        transitions.customer_id,
        transitions.effective_date as as_of_date,
        transitions.previous_as_of_date,
        rules.rule_id,
        rules.dimension,
        {{ alert_dimension_value('rules', 'transitions', 'from') }} as from_value,
        {{ alert_dimension_value('rules', 'transitions', 'to') }} as to_value,
        rules.action,
        rules.channel,
        rules.priority,
        rules.cooldown_days,
        rules.control_share,
        rules.message_en,
        rules.message_zh,
        {{ alert_rule_text('rules') }} as rule_text,
        transitions.to_status as status,
        transitions.to_tier as tier,
        transitions.to_value_score as value_score,
        transitions.reason as transition_reason,
        transitions.config_version

    from transitions
    inner join rules on {{ alert_rule_fires('rules', 'transitions') }}
    where transitions.effective_date = {{ as_of_date() }}
        and rules.is_enabled
        and {{ rule_value_matches('rules.tier_scope', 'transitions.to_tier') }}
{%- endmacro %}

{#- The cooldown of each match: the other alerts of the same customer and rule less than
    cooldown_days away, before or after (alerts_within_cooldown; 0 = the match is an alert), the
    earliest of them (holding_alert_date) and the latest earlier alert (previous_alert_date). Reads
    the calling model's CTEs `matched` (macro alert_rule_matches) and `other_alerts` (macro
    alerts_of_other_dates). -#}
{% macro alert_cooldown() -%}
    select
        matched.*,
        max(other_alerts.as_of_date) filter (where other_alerts.as_of_date < matched.as_of_date)
            as previous_alert_date,
        count(other_alerts.as_of_date) filter (where {{ alert_within_cooldown() }}) as alerts_within_cooldown,
        min(other_alerts.as_of_date) filter (where {{ alert_within_cooldown() }}) as holding_alert_date

    from matched
    left join other_alerts
        on matched.customer_id = other_alerts.customer_id
        and matched.rule_id = other_alerts.rule_id
    group by all
{%- endmacro %}

{#- The other alert is less than the rule's cooldown_days away from the match, before or after. -#}
{% macro alert_within_cooldown() -%}
    abs(date_diff('day', other_alerts.as_of_date, matched.as_of_date)) < matched.cooldown_days
{%- endmacro %}
