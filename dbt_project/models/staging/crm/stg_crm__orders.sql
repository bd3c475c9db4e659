{{ config(materialized='incremental', unique_key='order_id', incremental_strategy='delete+insert') }}

with

source as not materialized (

    -- read where used: stored, it would hold all of raw (macros/latest_version.sql)
    -- customer ids as the load's mapping says to match them (trim by default)
    select
        raw_orders.* replace (
            {{ normalize_customer_id('raw_orders.customer_id', 'load_settings.id_normalize') }} as customer_id
        ),
        load_settings.timezone as source_timezone
    from {{ source('crm', 'orders') }} as raw_orders
    {{ join_load_settings('raw_orders') }}

),

candidates as (

    -- every version of the keys touched by loads this table has not seen yet (all rows on a full build)
    {{ rows_of_changed_keys('source', 'order_id') }}

),

latest as (

    -- a re-export repeats orders with changes (paid -> refunded): keep the latest load of each
    -- order, with all its lines (line-level exports repeat the order id within one load)
    {{ latest_version('candidates', 'order_id', whole_load=true) }}

),

lines as (

    select
        trim(order_id) as order_id,
        trim(customer_id) as customer_id,
        {{ utc_timestamp('order_time', 'source_timezone') }} as ordered_at,
        -- exact decimals: ingest admits at most 4 places, so nothing is rounded here
        cast(trim(amount) as decimal(18, 4)) as amount,
        coalesce(upper(nullif(trim(currency), '')), '{{ var("base_currency") }}') as currency,
        lower(trim(status)) as order_status,
        -- a credit note's reference to the order it returns, when the export has one
        nullif(trim(json_extract_string(_extra, '$.original_order_id')), '') as original_order_id,
        _source,
        _load_id,
        _load_seq

    from latest

),

orders as (

    -- one order per order id: lines summed, the earliest line's time; ingest guarantees the
    -- lines of one order agree on customer, status and currency
    select
        order_id,
        min(customer_id) as customer_id,
        min(ordered_at) as ordered_at,
        sum(amount) as amount,
        min(currency) as currency,
        min(order_status) as order_status,
        count(*) as line_count,
        min(original_order_id) as original_order_id,
        min(_source) as source_system,
        min(_load_id) as load_id,
        max(_load_seq) as load_seq

    from lines
    group by order_id

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        {{ business_date('ordered_at') }} as order_date,
        amount,
        currency,
        order_status,
        line_count,
        -- a credit note: its own document with a negative amount (a return), status refunded
        order_status = 'refunded' and amount < 0 as is_return,
        original_order_id,
        -- value: paid orders add their amount, credit notes subtract theirs; a refunded or
        -- cancelled order keeps nothing
        case
            when order_status = 'paid' then amount
            when order_status = 'refunded' and amount < 0 then amount
            else 0
        end as net_amount,
        order_status = 'paid' as is_paid,
        source_system,
        load_id,
        load_seq,
        {{ staged_through_load_seq() }} as through_load_seq

    from orders

)

select * from final
