with

purchase_days as (

    -- one row per buyer and purchase day: the BG/NBD purchase (several orders on one day are one)
    select * from {{ ref('int_customer_purchase_days') }}

),

daily_orders as (

    select * from {{ ref('int_customer_daily_orders') }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

returns as (

    -- credit notes known on the as-of day: they reduce net spend, and are not purchases
    -- (only buyers' returns reach a row: the population is that of purchase_days)
    select
        daily_orders.customer_id,
        -sum(daily_orders.returned_net_amount * fx_rates.rate_to_base) as returned_value

    from daily_orders
    left join fx_rates on daily_orders.currency = fx_rates.currency
    where daily_orders.activity_date <= {{ as_of_date() }}
        and daily_orders.returns > 0
    group by daily_orders.customer_id

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
