{%- set windows = var('behaviour_windows') -%}
with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('int_customer_orders_aggregated') }}

),

events as (

    select * from {{ ref('int_customer_events_aggregated') }}

),

joined as (

    select
        customers.customer_id,
        customers.as_of_date,
        coalesce(orders.orders_total, 0) as orders_total,
        coalesce(orders.paid_orders, 0) as paid_orders,
        coalesce(orders.refunded_orders, 0) as refunded_orders,
        coalesce(orders.cancelled_orders, 0) as cancelled_orders,
        coalesce(orders.returns, 0) as returns,
        coalesce(orders.purchased_amount, 0) as purchased_amount,
        coalesce(orders.returned_amount, 0) as returned_amount,
        coalesce(orders.net_spend, 0) as net_spend,
        coalesce(orders.has_returns_exceeding_purchases, false) as has_returns_exceeding_purchases,
        coalesce(orders.purchase_days, 0) as purchase_days,
        orders.first_purchase_date,
        orders.last_purchase_date,
        orders.last_order_date,
        coalesce(orders.rfm_frequency, 0) as rfm_frequency,
        coalesce(orders.rfm_monetary, 0) as rfm_monetary,
        {%- for window in windows %}
        coalesce(orders.paid_orders_{{ window }}d, 0) as paid_orders_{{ window }}d,
        coalesce(orders.net_spend_{{ window }}d, 0) as net_spend_{{ window }}d,
        coalesce(events.events_{{ window }}d, 0) as events_{{ window }}d,
        {%- for event_type in var('event_types') %}
        coalesce(events.{{ event_type }}_{{ window }}d, 0) as {{ event_type }}_{{ window }}d,
        {%- endfor %}
        {%- endfor %}
        coalesce(events.events_total, 0) as events_total,
        events.last_event_date,
        customers.tenure_days,
        customers.config_version

    from customers
    left join orders on customers.customer_id = orders.customer_id
    left join events on customers.customer_id = events.customer_id

),

final as (

    select
        *,
        case when paid_orders > 0 then net_spend / paid_orders end as avg_order_value,
        date_diff('day', last_purchase_date, as_of_date) as days_since_last_purchase,
        case
            when purchase_days > 1
                then date_diff('day', first_purchase_date, last_purchase_date) / (purchase_days - 1)
        end as avg_days_between_purchases,
        greatest(last_order_date, last_event_date) as last_interaction_date,
        date_diff('day', greatest(last_order_date, last_event_date), as_of_date) as days_since_last_interaction

    from joined

)

select * from final
