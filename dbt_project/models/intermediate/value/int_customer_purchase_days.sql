with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

orders as (

    select * from {{ ref('stg_crm__orders') }}

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

paid_orders as (

    -- purchases known on the as-of day; refunded and cancelled orders are not purchases
    select
        orders.customer_id,
        orders.order_date,
        orders.net_amount * fx_rates.rate_to_base as net_amount_base

    from orders
    inner join customers_as_of on orders.customer_id = customers_as_of.customer_id
    left join fx_rates on orders.currency = fx_rates.currency
    where orders.ordered_at < {{ as_of_end() }}
        and orders.is_paid

),

purchase_days as (

    -- BG/NBD counts purchase days: several orders on one day are one purchase
    select
        customer_id,
        order_date as purchase_date,
        sum(net_amount_base) as purchase_value

    from paid_orders
    group by customer_id, order_date

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
