{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'as_of_date'],
        full_refresh=false,
        pre_hook="{{ delete_history_dates('as_of_date') }}",
    )
}}
{#- One row per customer and as-of date: a run replaces its own date (pre-hook), so re-running a
    date never duplicates and a backfill in any order gives the rows the daily runs gave.
    full_refresh=false: history cannot be rebuilt from the marts (they hold one date only). -#}
with

status as (

    select * from {{ ref('customer_status') }}

),

tiers as (

    select * from {{ ref('customer_tiers') }}

),

segments as (

    select * from {{ ref('customer_segments') }}

),

behaviour as (

    select * from {{ ref('fct_customer_behaviour') }}

),

clv as (

    select * from {{ ref('customer_clv') }}

),

status_as_of as (

    select *
    from status
    where as_of_date = {{ as_of_date() }}

),

joined as (

    select
        status_as_of.customer_id,
        status_as_of.as_of_date,
        status_as_of.status,
        status_as_of.status_reason,
        status_as_of.is_at_risk,
        status_as_of.at_risk_reason,
        tiers.tier,
        tiers.tier_rank,
        tiers.tier_reason,
        segments.segment,
        tiers.r_score,
        tiers.f_score,
        tiers.m_score,
        tiers.value_score,
        tiers.value_percentile,
        behaviour.paid_orders,
        behaviour.net_spend,
        status_as_of.days_since_last_interaction,
        status_as_of.days_since_last_purchase,
        clv.p_alive,
        clv.expected_purchases_90d,
        clv.clv,
        status_as_of.config_version

    from status_as_of
    left join tiers
        on status_as_of.customer_id = tiers.customer_id
        and status_as_of.as_of_date = tiers.as_of_date
    left join segments
        on status_as_of.customer_id = segments.customer_id
        and status_as_of.as_of_date = segments.as_of_date
    left join behaviour
        on status_as_of.customer_id = behaviour.customer_id
        and status_as_of.as_of_date = behaviour.as_of_date
    left join clv
        on status_as_of.customer_id = clv.customer_id
        and status_as_of.as_of_date = clv.as_of_date

),

final as (

    select * from joined

)

select * from final
