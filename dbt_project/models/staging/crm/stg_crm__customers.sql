{{ config(materialized='incremental', unique_key='customer_id', incremental_strategy='delete+insert') }}

with

source as not materialized (

    -- read where used: stored, it would hold all of raw (macros/latest_version.sql)
    -- customer ids as the load's mapping says to match them (trim by default)
    select
        raw_customers.* replace (
            {{ normalize_customer_id('raw_customers.customer_id', 'load_settings.id_normalize') }} as customer_id
        ),
        load_settings.timezone as source_timezone
    from {{ source('crm', 'customers') }} as raw_customers
    {{ join_load_settings('raw_customers') }}

),

candidates as (

    -- every version of the keys touched by loads this table has not seen yet (all rows on a full build)
    {{ rows_of_changed_keys('source', 'customer_id') }}

),

latest as (

    -- a re-export repeats customers: keep the latest version of each
    {{ latest_version('candidates', 'customer_id') }}

),

renamed as (

    select
        trim(customer_id) as customer_id,
        nullif(trim(name), '') as customer_name,
        {{ read_gender('gender') }} as gender,
        {{ read_date('birth_date') }} as birth_date,
        nullif(regexp_replace(phone, '[^0-9+]', '', 'g'), '') as phone,
        nullif(lower(trim(email)), '') as email,
        nullif(trim(occupation), '') as occupation,
        {{ read_number('income') }} as income,
        nullif(trim(province), '') as province,
        nullif(trim(city), '') as city,
        {{ utc_timestamp('created_at', 'source_timezone') }} as created_at,
        {{ business_date(utc_timestamp('created_at', 'source_timezone')) }} as created_date,
        _extra as extra_attributes,  -- extra export columns (JSON): attribute tier rules may read them
        _source as source_system,
        _load_id as load_id,
        _load_seq as load_seq,
        {{ staged_through_load_seq() }} as through_load_seq

    from latest

)

select * from renamed
