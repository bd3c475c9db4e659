{%- set windows = var('behaviour_windows') -%}
with

summary as (

    select * from {{ ref('int_customer_purchase_summary') }}

),

customers as (

    select
        customer_id,
        as_of_date,
        cast(date_trunc('month', first_purchase_date) as date) as cohort_month,
        purchase_days,
        date_diff('day', first_purchase_date, second_purchase_date) as days_to_second_purchase,
        config_version

    from summary

),

cohorts as (

    select
        cohort_month,
        as_of_date,
        config_version,
        count(*) as customers,
        {%- for window in windows %}
        count(*) filter (where days_to_second_purchase <= {{ window }}) as repeat_customers_{{ window }}d,
        {%- endfor %}
        count(*) filter (where purchase_days > 1) as repeat_customers

    from customers
    group by cohort_month, as_of_date, config_version

),

cohorts_dated as (

    select
        *,
        -- the latest first purchase the cohort can hold
        cast(cohort_month + interval 1 month - interval 1 day as date) as cohort_last_day

    from cohorts

),

final as (

    select
        cohort_month,
        as_of_date,
        -- every member was observed at least this long (0 while the cohort month is still running)
        date_diff('day', least(cohort_last_day, as_of_date), as_of_date) as cohort_observed_days,
        customers,
        repeat_customers,
        round(repeat_customers / customers, 6) as repeat_purchase_rate,
        {%- for window in windows %}
        repeat_customers_{{ window }}d,
        -- null until every member of the cohort had {{ window }} days to come back
        case
            when cohort_last_day + {{ window }} <= as_of_date
                then round(repeat_customers_{{ window }}d / customers, 6)
        end as repeat_rate_{{ window }}d,
        {%- endfor %}
        config_version

    from cohorts_dated

)

select * from final
