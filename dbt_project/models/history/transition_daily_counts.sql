{{ config(materialized='table') }}
{#- For BI: customers per effective date, dimension and from -> to. Small, rebuilt from the
    transitions on every run. -#}
with

transitions as (

    select * from {{ ref('customer_transitions') }}

),

status_changes as (

    select
        effective_date,
        'status' as dimension,
        from_status as from_value,
        to_status as to_value,
        count(*) as customers

    from transitions
    where is_status_changed
    group by all

),

tier_changes as (

    select
        effective_date,
        'tier' as dimension,
        from_tier as from_value,
        to_tier as to_value,
        count(*) as customers

    from transitions
    where is_tier_changed
    group by all

),

at_risk_changes as (

    select
        effective_date,
        'at_risk' as dimension,
        cast(coalesce(from_is_at_risk, false) as varchar) as from_value,
        cast(coalesce(to_is_at_risk, false) as varchar) as to_value,
        count(*) as customers

    from transitions
    where is_at_risk_changed
    group by all

),

unioned as (

    select * from status_changes
    union all
    select * from tier_changes
    union all
    select * from at_risk_changes

),

final as (

    select * from unioned
    order by effective_date, dimension, from_value, to_value

)

select * from final
