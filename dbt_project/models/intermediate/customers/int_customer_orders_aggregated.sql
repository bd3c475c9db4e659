{%- set windows = var('behaviour_windows') -%}
{%- set net_value = 'net_amount * rate_to_base' -%}
{#- days with an order that is an interaction: credit notes only with var returns_count_as_interaction -#}
{%- set interaction_orders = 'orders_total > 0' if var('returns_count_as_interaction') else 'orders_total > returns' -%}
{#- windows moved by the day: only customers whose sums can have changed are recomputed (moving_windows.sql) -#}
{%- set window_days = windows + ([var('rfm_window_days')] if var('rfm_window_days') else []) -%}
{%- set config_vars = ['behaviour_windows', 'rfm_window_days', 'returns_count_as_interaction'] -%}
{%- set key = windows_key(config_vars, [ref('fx_rates')]) -%}
{%- set last_build = windows_last_build(ref('int_customer_daily_orders'), key) -%}
with

daily_orders as (

    select * from {{ ref('int_customer_daily_orders') }}

),

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

{%- if last_build is not none %}

moved_customers as materialized (

    -- only on a build that starts from the last one: the customers whose sums can have changed
    {{ customers_whose_windows_moved(last_build, 'daily_orders', window_days) }}

),
{%- endif %}

days_as_of as (

    -- only what was known on the as-of day: a past date rebuilds to the same answer
    select
        daily_orders.*,
        fx_rates.rate_to_base,
        date_diff('day', daily_orders.activity_date, {{ as_of_date() }}) as days_ago

    from daily_orders {{ only_moved_customers(last_build, 'moved_customers', 'daily_orders.customer_id') }}
    left join fx_rates on daily_orders.currency = fx_rates.currency
    where daily_orders.activity_date <= {{ as_of_date() }}

),

aggregated as (

    select
        customer_id,
        {{ activity_count('orders_total') }} as orders_total,
        {{ activity_count('paid_orders') }} as paid_orders,
        {{ activity_count('refunded_orders') }} as refunded_orders,
        {{ activity_count('cancelled_orders') }} as cancelled_orders,
        {{ activity_count('returns') }} as returns,
        {{ activity_amount('paid_amount * rate_to_base') }} as purchased_amount,
        -{{ activity_amount('returned_net_amount * rate_to_base') }} as returned_amount,
        -- net spend = paid minus returned (credit notes carry negative net amounts)
        {{ activity_amount(net_value) }} as net_spend,
        count(distinct activity_date) filter (where paid_orders > 0) as purchase_days,
        min(activity_date) filter (where paid_orders > 0) as first_purchase_date,
        max(activity_date) filter (where paid_orders > 0) as last_purchase_date,
        -- placing an order is an interaction even when it is later refunded or cancelled; a
        -- return (credit note) is one only when var returns_count_as_interaction says so
        max(activity_date) filter (where {{ interaction_orders }}) as last_order_date,
        {%- for window in windows %}
        {{ activity_count('paid_orders', 'days_ago < ' ~ window) }} as paid_orders_{{ window }}d,
        {{ activity_amount(net_value, 'days_ago < ' ~ window) }} as net_spend_{{ window }}d,
        {%- endfor %}
        {%- if var('rfm_window_days') %}
        {{ activity_count('paid_orders', 'days_ago < ' ~ var('rfm_window_days')) }} as rfm_frequency,
        {{ activity_amount(net_value, 'days_ago < ' ~ var('rfm_window_days')) }} as rfm_monetary,
        {%- else %}
        {{ activity_count('paid_orders') }} as rfm_frequency,
        {{ activity_amount(net_value) }} as rfm_monetary,
        {%- endif %}
        {{ activity_count('orders_total', 'rate_to_base is null') }} as orders_unknown_currency

    from days_as_of
    group by customer_id

),

recomputed as (

    select
        *,
        -- returns equal to or above purchases (e.g. returns of purchases made before the export
        -- begins): no net purchase, so no value score and the lowest tier (status still counts
        -- the purchases as interactions)
        returns > 0 and net_spend <= 0 as has_returns_exceeding_purchases

    from aggregated

),

final as (

    {{ rows_moved_and_kept(last_build, 'recomputed', 'moved_customers', 'daily_orders', key) }}

)

select * from final
