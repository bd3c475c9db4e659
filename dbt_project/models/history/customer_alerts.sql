{#- Alerts (监测与预警): transitions matched against seed alert_rules, with a cooldown (config: the yml) -#}
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

other_alerts as (

    -- alerts of other as-of dates already in this table (none on the first build)
    {{ alerts_of_other_dates() }}

),

matched as (

    -- this run's transitions that fire an enabled rule within its tier scope (shared with customer_alert_holds)
    {{ alert_rule_matches() }}

),

cooldown as (

    -- the pair's other alerts less than cooldown_days away, before or after (shared with customer_alert_holds)
    {{ alert_cooldown() }}

),

kept as (

    -- cooldown: no alert when the pair has another alert less than cooldown_days away
    select * from cooldown
    where alerts_within_cooldown = 0

),

final as (

    select
        {{ alert_id('kept.customer_id', 'kept.rule_id', 'kept.as_of_date') }} as alert_id,
        kept.customer_id,
        kept.rule_id,
        kept.as_of_date,
        kept.previous_as_of_date,
        kept.dimension,
        kept.from_value,
        kept.to_value,
        kept.action,
        kept.channel,
        kept.priority,
        kept.status,
        kept.tier,
        history.segment,
        kept.value_score,
        {{ has_channel_contact('kept.channel', 'customers') }} as has_contact,
        -- control group: recorded, not sent (outbox), to measure the action (macro control_bucket)
        {{ control_bucket('kept.customer_id', 'kept.rule_id') }} < kept.control_share as is_control,
        kept.cooldown_days,
        kept.previous_alert_date,
        kept.message_en,
        kept.message_zh,
        {{ alert_reason('kept') }} as reason,
        kept.config_version

    from kept
    left join customers on kept.customer_id = customers.customer_id
    left join history
        on kept.customer_id = history.customer_id
        and kept.as_of_date = history.as_of_date

)

select * from final
