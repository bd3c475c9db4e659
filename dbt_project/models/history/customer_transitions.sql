{#- Changes against the customer's latest earlier date (config, dates a run recomputes: see the yml) -#}
with

history as not materialized (

    select * from {{ ref('customer_history') }}

),

history_dates as (

    select distinct as_of_date from history

),

target_dates as (

    select as_of_date as effective_date
    from history_dates
    {%- if is_incremental() %}
    where as_of_date = {{ as_of_date() }}
        or as_of_date = (
            select min(later.as_of_date) from history_dates as later where later.as_of_date > {{ as_of_date() }}
        )
    {%- endif %}

),

previous_rows as (

    -- the rows that can be a target row's latest earlier row: a daily run reads two dates, not all of history
    {{ rows_that_can_precede('history', 'history_dates', 'target_dates') }}

),

paired as (

    -- the latest earlier row of the same customer; customers seen for the first time have none
    select
        current_rows.customer_id,
        current_rows.as_of_date as effective_date,
        previous_rows.as_of_date as previous_as_of_date,
        previous_rows.status as from_status,
        current_rows.status as to_status,
        previous_rows.tier as from_tier,
        current_rows.tier as to_tier,
        previous_rows.tier_rank as from_tier_rank,
        current_rows.tier_rank as to_tier_rank,
        previous_rows.is_at_risk as from_is_at_risk,
        current_rows.is_at_risk as to_is_at_risk,
        previous_rows.value_score as from_value_score,
        current_rows.value_score as to_value_score,
        current_rows.status_reason,
        current_rows.tier_reason,
        current_rows.at_risk_reason,
        previous_rows.config_version as from_config_version,
        current_rows.config_version

    from history as current_rows
    inner join target_dates on current_rows.as_of_date = target_dates.effective_date
    asof inner join previous_rows
        on current_rows.customer_id = previous_rows.customer_id
        and current_rows.as_of_date > previous_rows.as_of_date

),

compared as (

    select
        *,
        (from_status is distinct from to_status) as is_status_changed,
        (from_tier is distinct from to_tier) as is_tier_changed,
        coalesce(from_is_at_risk, false) <> coalesce(to_is_at_risk, false) as is_at_risk_changed,
        (from_config_version is distinct from config_version) as is_config_changed

    from paired

),

explained as (

    select
        *,
        case
            when is_status_changed and is_tier_changed then 'both'
            when is_status_changed then 'status'
            when is_tier_changed then 'tier'
            else 'at_risk'
        end as change_kind,
        case
            when not is_tier_changed then 'none'
            when from_tier = 'new' or to_tier = 'new' then 'none'
            when to_tier_rank < from_tier_rank then 'up'
            else 'down'
        end as tier_direction,
        {{ transition_reason() }} as reason

    from compared
    where is_status_changed or is_tier_changed or is_at_risk_changed

),

final as (

    select
        customer_id,
        effective_date,
        previous_as_of_date,
        date_diff('day', previous_as_of_date, effective_date) as days_since_previous,
        change_kind,
        is_status_changed,
        from_status,
        to_status,
        is_tier_changed,
        from_tier,
        to_tier,
        from_tier_rank,
        to_tier_rank,
        tier_direction,
        is_at_risk_changed,
        from_is_at_risk,
        to_is_at_risk,
        from_value_score,
        to_value_score,
        is_config_changed,
        reason,
        config_version

    from explained

)

select * from final
