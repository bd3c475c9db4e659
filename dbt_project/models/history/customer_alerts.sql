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

matched as (

    -- this run's transitions that fire an enabled rule within its tier scope
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

),

kept as (

    -- cooldown: no alert when the pair has another alert less than cooldown_days away, before or after
    select
        matched.*,
        max(earlier_alerts.as_of_date) filter (where earlier_alerts.as_of_date < matched.as_of_date)
            as previous_alert_date

    from matched
    left join ({{ alerts_of_other_dates() }}) as earlier_alerts
        on matched.customer_id = earlier_alerts.customer_id
        and matched.rule_id = earlier_alerts.rule_id
    group by all
    having count(earlier_alerts.as_of_date) filter (
            where abs(date_diff('day', earlier_alerts.as_of_date, matched.as_of_date)) < matched.cooldown_days
        ) = 0

),

final as (

    select
        md5(kept.customer_id || '|' || kept.rule_id || '|' || strftime(kept.as_of_date, '%Y-%m-%d')) as alert_id,
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
