{#- Alerts held by the cooldown (预警冷却): the matches customer_alerts dropped, with the alert that held them -#}
with

transitions as (

    select * from {{ ref('customer_transitions') }}

),

rules as (

    select * from {{ ref('alert_rules') }}

),

other_alerts as (

    -- alerts of other as-of dates: the ones customer_alerts compared this run's matches with
    {{ alerts_of_other_dates(ref('customer_alerts')) }}

),

matched as (

    -- this run's transitions that fire an enabled rule within its tier scope (as in customer_alerts)
    {{ alert_rule_matches() }}

),

cooldown as (

    -- the pair's other alerts less than cooldown_days away, before or after (as in customer_alerts)
    {{ alert_cooldown() }}

),

held as (

    -- the matches the cooldown held back: customer_alerts keeps the others
    select * from cooldown
    where alerts_within_cooldown > 0

),

final as (

    select
        {{ alert_id('held.customer_id', 'held.rule_id', 'held.as_of_date') }} as held_alert_id,
        held.customer_id,
        held.rule_id,
        held.as_of_date,
        held.dimension,
        held.from_value,
        held.to_value,
        held.action,
        held.channel,
        held.cooldown_days,
        held.holding_alert_date,
        {{ alert_id('held.customer_id', 'held.rule_id', 'held.holding_alert_date') }} as holding_alert_id,
        date_diff('day', held.holding_alert_date, held.as_of_date) as days_from_holding_alert,
        held.config_version

    from held

)

select * from final
