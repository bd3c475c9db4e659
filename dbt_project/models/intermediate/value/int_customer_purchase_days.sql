with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

daily_orders as (

    select * from {{ ref('int_customer_daily_orders') }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

customers_as_of as (

    -- the population of dim_customers: a customer exists from its creation day on
    select customer_id
    from customers
    where created_at < {{ as_of_end() }}

),

purchase_days as (

    -- purchases known on the as-of day (refunded and cancelled orders are not purchases); BG/NBD
    -- counts purchase days: several orders on one day are one purchase
    select
        daily_orders.customer_id,
        daily_orders.activity_date as purchase_date,
        sum(daily_orders.paid_amount * fx_rates.rate_to_base) as purchase_value

    from daily_orders
    inner join customers_as_of on daily_orders.customer_id = customers_as_of.customer_id
    left join fx_rates on daily_orders.currency = fx_rates.currency
    where daily_orders.activity_date <= {{ as_of_date() }}
        and daily_orders.paid_orders > 0
    group by daily_orders.customer_id, daily_orders.activity_date

),

final as (

    select
        customer_id,
        purchase_date,
        purchase_value,
        {{ as_of_date() }} as as_of_date

    from purchase_days

)

select * from final
