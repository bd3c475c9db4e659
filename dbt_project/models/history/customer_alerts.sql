{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='alert_id',
        full_refresh=false,
        pre_hook="{{ delete_history_dates('as_of_date') }}",
    )
}}
{#- Alerts (监测与预警): this run's transitions matched against the editable seed alert_rules, one row
    per (customer, rule, as-of date) with a deterministic alert_id. A run replaces its own date
    (pre-hook), so a re-run or a backfill never creates a second alert.
    Cooldown: no alert when the same customer and rule already has an alert on another date less
    than cooldown_days away. Runs in date order only ever see earlier alerts; looking both ways also
    keeps the rule when an older date is re-run after later ones (its alert is then not re-created
    if a later alert of the same pair was handed over in the meantime).
    Later dates' alerts are not recomputed when an older date is re-run: they were handed over.
    full_refresh=false: delivered alerts are a record, not something to rebuild. -#}
with

transitions as (

    select * from {{ ref('customer_transitions') }}

),

rules as (

    select * from {{ ref('alert_rules') }}

),

history as (

    select * from {{ ref('customer_history') }}

),

customers as (

    -- only whether a contact exists leaves staging: the contact itself goes to the outbox only
    select * from {{ ref('stg_crm__customers') }}

),

earlier_alerts as (

    {%- if is_incremental() %}

    select customer_id, rule_id, as_of_date
    from {{ this }}
    where as_of_date <> {{ as_of_date() }}
    {%- else %}

    -- first build: no alert rows yet
    select
        cast(null as varchar) as customer_id,
        cast(null as varchar) as rule_id,
        cast(null as date) as as_of_date
    where false
    {%- endif %}

),

enabled_rules as (

    select *
    from rules
    where is_enabled

),

todays_transitions as (

    select *
    from transitions
    where effective_date = {{ as_of_date() }}

),

matched as (

    select
        todays_transitions.customer_id,
        todays_transitions.effective_date as as_of_date,
        todays_transitions.previous_as_of_date,
        enabled_rules.rule_id,
        enabled_rules.dimension,
        case enabled_rules.dimension
            when 'status' then todays_transitions.from_status
            when 'tier' then todays_transitions.from_tier
            else cast(coalesce(todays_transitions.from_is_at_risk, false) as varchar)
        end as from_value,
        case enabled_rules.dimension
            when 'status' then todays_transitions.to_status
            when 'tier' then todays_transitions.to_tier
            else cast(coalesce(todays_transitions.to_is_at_risk, false) as varchar)
        end as to_value,
        enabled_rules.action,
        enabled_rules.channel,
        enabled_rules.priority,
        enabled_rules.cooldown_days,
        enabled_rules.control_share,
        enabled_rules.message_en,
        enabled_rules.message_zh,
        enabled_rules.from_value as rule_from_value,
        enabled_rules.to_value as rule_to_value,
        enabled_rules.tier_scope as rule_tier_scope,
        todays_transitions.to_status as status,
        todays_transitions.to_tier as tier,
        todays_transitions.to_value_score as value_score,
        todays_transitions.reason as transition_reason,
        todays_transitions.config_version

    from todays_transitions
    inner join enabled_rules
        on (
            enabled_rules.dimension = 'status'
            and todays_transitions.is_status_changed
            and {{ rule_value_matches('enabled_rules.from_value', 'todays_transitions.from_status') }}
            and {{ rule_value_matches('enabled_rules.to_value', 'todays_transitions.to_status') }}
        )
        or (
            enabled_rules.dimension = 'tier'
            and todays_transitions.is_tier_changed
            and {{ rule_value_matches('enabled_rules.from_value', 'todays_transitions.from_tier') }}
            and (
                -- lower / higher: by tier_rank (1 = best); `new` is neither
                case enabled_rules.to_value
                    when 'lower' then todays_transitions.tier_direction = 'down'
                    when 'higher' then todays_transitions.tier_direction = 'up'
                    else {{ rule_value_matches('enabled_rules.to_value', 'todays_transitions.to_tier') }}
                end
            )
        )
        or (
            enabled_rules.dimension = 'at_risk'
            and todays_transitions.is_at_risk_changed
            and {{ rule_value_matches('enabled_rules.from_value',
                                      'cast(coalesce(todays_transitions.from_is_at_risk, false) as varchar)') }}
            and {{ rule_value_matches('enabled_rules.to_value',
                                      'cast(coalesce(todays_transitions.to_is_at_risk, false) as varchar)') }}
        )
    where {{ rule_value_matches('enabled_rules.tier_scope', 'todays_transitions.to_tier') }}

),

cooldown_checked as (

    select
        matched.*,
        max(earlier_alerts.as_of_date) filter (where earlier_alerts.as_of_date < matched.as_of_date)
            as previous_alert_date,
        count(earlier_alerts.as_of_date) filter (
            where abs(date_diff('day', earlier_alerts.as_of_date, matched.as_of_date)) < matched.cooldown_days
        ) as alerts_within_cooldown

    from matched
    left join earlier_alerts
        on matched.customer_id = earlier_alerts.customer_id
        and matched.rule_id = earlier_alerts.rule_id
    group by all

),

kept as (

    select *
    from cooldown_checked
    where alerts_within_cooldown = 0

),

with_contact as (

    select
        kept.*,
        case kept.channel
            when 'email' then customers.email is not null
            when 'sms' then customers.phone is not null
            when 'phone' then customers.phone is not null
            else customers.customer_id is not null
        end as has_contact,
        history.segment

    from kept
    left join customers on kept.customer_id = customers.customer_id
    left join history
        on kept.customer_id = history.customer_id
        and kept.as_of_date = history.as_of_date

),

final as (

    select
        md5(customer_id || '|' || rule_id || '|' || strftime(as_of_date, '%Y-%m-%d')) as alert_id,
        customer_id,
        rule_id,
        as_of_date,
        previous_as_of_date,
        dimension,
        from_value,
        to_value,
        action,
        channel,
        priority,
        status,
        tier,
        segment,
        value_score,
        has_contact,
        -- control group: recorded, not sent (outbox), to measure the action (macro control_bucket)
        {{ control_bucket('customer_id', 'rule_id') }} < control_share as is_control,
        cooldown_days,
        previous_alert_date,
        message_en,
        message_zh,
        rule_id || ' (' || dimension || ' ' || rule_from_value || ' → ' || rule_to_value
            || case when rule_tier_scope <> '*' then ', tiers ' || rule_tier_scope else '' end
            || ', cooldown ' || cooldown_days || ' days'
            || coalesce(', previous alert ' || previous_alert_date, '') || '): '
            || transition_reason as reason,
        config_version

    from with_contact

)

select * from final
