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

returns as (

    -- credit notes known on the as-of day: they reduce net spend, and are not purchases
    select
        orders.customer_id,
        -sum(orders.net_amount * fx_rates.rate_to_base) as returned_value

    from orders
    inner join customers_as_of on orders.customer_id = customers_as_of.customer_id
    left join fx_rates on orders.currency = fx_rates.currency
    where orders.ordered_at < {{ as_of_end() }}
        and orders.is_return
    group by orders.customer_id

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

numbered as (

    select
        *,
        row_number() over (partition by customer_id order by purchase_date) as purchase_number

    from purchase_days

),

summarised as (

    select
        customer_id,
        count(*) as purchase_days,
        min(purchase_date) as first_purchase_date,
        min(purchase_date) filter (where purchase_number = 2) as second_purchase_date,
        max(purchase_date) as last_purchase_date,
        sum(purchase_value) as purchased_value,
        sum(purchase_value) filter (where purchase_number > 1) as repeat_value,
        count(*) filter (where purchase_number > 1) as repeat_days

    from numbered
    group by customer_id

),

netted as (

    -- net spend = paid minus returned. Gamma-Gamma's m_x is the mean net value of the repeat
    -- purchase days (the first one is left out): returns are taken from the repeat spend, so a
    -- customer whose returns eat it is left out of the Gamma-Gamma fit (m_x <= 0)
    select
        summarised.*,
        summarised.purchased_value - coalesce(returns.returned_value, 0) as net_spend,
        (summarised.repeat_value - coalesce(returns.returned_value, 0)) / nullif(summarised.repeat_days, 0)
            as repeat_monetary_value

    from summarised
    left join returns on summarised.customer_id = returns.customer_id

),

final as (

    select
        customer_id,
        {{ as_of_date() }} as as_of_date,
        first_purchase_date,
        second_purchase_date,
        last_purchase_date,
        purchase_days,
        purchase_days - 1 as frequency,
        date_diff('day', first_purchase_date, last_purchase_date) as recency_days,
        date_diff('day', first_purchase_date, {{ as_of_date() }}) as t_days,
        cast(net_spend as double) as net_spend,
        cast(repeat_monetary_value as double) as monetary_value,
        {{ config_version() }} as config_version

    from netted

)

select * from final
