{%- set windows = var('behaviour_windows') -%}
with

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

orders_as_of as (

    -- only what was known on the as-of day: a past date rebuilds to the same answer
    select
        orders.customer_id,
        orders.order_date,
        orders.order_status,
        orders.is_paid,
        orders.is_return,
        orders.net_amount * fx_rates.rate_to_base as net_amount_base,
        date_diff('day', orders.order_date, {{ as_of_date() }}) as days_ago

    from orders
    left join fx_rates on orders.currency = fx_rates.currency
    where orders.ordered_at < {{ as_of_end() }}

),

aggregated as (

    select
        customer_id,
        count(*) as orders_total,
        count(*) filter (where is_paid) as paid_orders,
        count(*) filter (where order_status = 'refunded' and not is_return) as refunded_orders,
        count(*) filter (where order_status = 'cancelled') as cancelled_orders,
        count(*) filter (where is_return) as returns,
        coalesce(sum(net_amount_base) filter (where is_paid), 0) as purchased_amount,
        coalesce(-sum(net_amount_base) filter (where is_return), 0) as returned_amount,
        -- net spend = paid minus returned (credit notes carry negative net amounts)
        coalesce(sum(net_amount_base), 0) as net_spend,
        count(distinct order_date) filter (where is_paid) as purchase_days,
        min(order_date) filter (where is_paid) as first_purchase_date,
        max(order_date) filter (where is_paid) as last_purchase_date,
        -- placing an order is an interaction even when it is later refunded or cancelled; a
        -- return (credit note) is one only when var returns_count_as_interaction says so
        max(order_date) filter (where {{ 'true' if var('returns_count_as_interaction') else 'not is_return' }})
            as last_order_date,
        {%- for window in windows %}
        count(*) filter (where is_paid and days_ago < {{ window }}) as paid_orders_{{ window }}d,
        coalesce(sum(net_amount_base) filter (where days_ago < {{ window }}), 0) as net_spend_{{ window }}d,
        {%- endfor %}
        {%- if var('rfm_window_days') %}
        count(*) filter (where is_paid and days_ago < {{ var('rfm_window_days') }}) as rfm_frequency,
        coalesce(sum(net_amount_base) filter (where days_ago < {{ var('rfm_window_days') }}), 0) as rfm_monetary,
        {%- else %}
        count(*) filter (where is_paid) as rfm_frequency,
        coalesce(sum(net_amount_base), 0) as rfm_monetary,
        {%- endif %}
        count(*) filter (where net_amount_base is null) as orders_unknown_currency

    from orders_as_of
    group by customer_id

),

final as (

    select
        *,
        -- returns equal to or above purchases (e.g. returns of purchases made before the export
        -- begins): no net purchase, so no value score and the lowest tier (status still counts
        -- the purchases as interactions)
        returns > 0 and net_spend <= 0 as has_returns_exceeding_purchases

    from aggregated

)

select * from final
