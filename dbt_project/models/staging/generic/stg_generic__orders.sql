{{ config(materialized='incremental', unique_key='order_id', incremental_strategy='delete+insert') }}

with

source as (

    select * from {{ source('generic', 'orders') }}

),

{% if is_incremental() %}
changed_keys as (

    -- keys touched by loads this table has not seen yet: all their versions are ranked again,
    -- exactly as a full refresh would rank them
    select distinct order_id
    from source
    where _load_seq > (select coalesce(max(load_seq), 0) from {{ this }})

),

candidates as (

    select source.*
    from source
    semi join changed_keys on source.order_id = changed_keys.order_id

),
{% else %}
candidates as (

    select * from source

),
{% endif %}

latest as (

    -- a re-export repeats orders with changes (paid -> refunded): keep the latest version
    {{ latest_version('candidates', 'order_id') }}

),

renamed as (

    select
        trim(order_id) as order_id,
        trim(customer_id) as customer_id,
        cast(order_time as timestamp) as ordered_at,
        cast(ordered_at as date) as order_date,  -- reuses the parsed ordered_at
        cast(amount as decimal(18, 2)) as amount,
        coalesce(upper(nullif(trim(currency), '')), '{{ var("base_currency") }}') as currency,
        lower(trim(status)) as order_status,
        -- refunds and cancellations keep no value: only paid orders count
        case when lower(trim(status)) = 'paid' then cast(amount as decimal(18, 2)) else 0 end as net_amount,
        lower(trim(status)) = 'paid' as is_paid,
        _source as source_system,
        _load_id as load_id,
        _load_seq as load_seq

    from latest

)

select * from renamed
