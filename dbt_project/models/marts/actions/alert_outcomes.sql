{#- What happened after each alert (策略效果): for every alert up to the as-of date, whether the customer
    was reactivated within control_outcome_window_days after it: any purchase day, or the status back
    to `active` on an as-of date of history in the window. A window that has not ended by the as-of
    date is not judged yet (is_window_complete = false). Treated (sent) and control (held out) alerts
    are judged the same way; alert_rule_outcomes compares them. -#}
with

alerts as (

    select * from {{ ref('customer_alerts') }}

),

history as (

    select * from {{ ref('customer_history') }}

),

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

followed as (

    select
        alert_id,
        customer_id,
        rule_id,
        action,
        as_of_date as alert_date,
        status as status_at_alert,
        is_control,
        as_of_date + {{ var('control_outcome_window_days') }} as window_end_date

    from alerts
    where as_of_date <= {{ as_of_date() }}

),

purchases_in_window as (

    select
        followed.alert_id,
        min(purchase_days.purchase_date) as first_purchase_date

    from followed
    inner join purchase_days
        on followed.customer_id = purchase_days.customer_id
        and purchase_days.purchase_date > followed.alert_date
        and purchase_days.purchase_date <= followed.window_end_date
    group by followed.alert_id

),

active_in_window as (

    select
        followed.alert_id,
        min(history.as_of_date) as first_active_date

    from followed
    inner join history
        on followed.customer_id = history.customer_id
        and history.as_of_date > followed.alert_date
        and history.as_of_date <= least(followed.window_end_date, {{ as_of_date() }})
        and history.status = 'active'
    group by followed.alert_id

),

judged as (

    select
        followed.*,
        followed.window_end_date <= {{ as_of_date() }} as is_window_complete,
        purchases_in_window.first_purchase_date,
        active_in_window.first_active_date,
        purchases_in_window.first_purchase_date is not null
        or active_in_window.first_active_date is not null as is_reactivated

    from followed
    left join purchases_in_window on followed.alert_id = purchases_in_window.alert_id
    left join active_in_window on followed.alert_id = active_in_window.alert_id

),

final as (

    select
        alert_id,
        customer_id,
        rule_id,
        action,
        alert_date,
        status_at_alert,
        is_control,
        {{ var('control_outcome_window_days') }} as window_days,
        window_end_date,
        is_window_complete,
        first_purchase_date,
        first_active_date,
        is_reactivated,
        is_reactivated and status_at_alert = 'churned' as is_win_back,
        case
            when first_purchase_date is not null then 'purchase on ' || first_purchase_date
            when first_active_date is not null then 'active again on ' || first_active_date
            when is_window_complete then 'no purchase and not active within ' || window_days || ' days'
            else 'window ends ' || window_end_date || ', after the as-of date: not judged yet'
        end as outcome_reason,
        {{ as_of_date() }} as as_of_date,
        {{ config_version() }} as config_version

    from judged

)

select * from final
