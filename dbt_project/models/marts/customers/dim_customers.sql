with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

regions as (

    select * from {{ ref('province_regions') }}

),

customers_as_of as (

    -- a customer exists from its creation day on
    select *
    from customers
    where created_at < {{ as_of_end() }}

),

with_age as (

    select
        *,
        case
            when birth_date is null or birth_date > {{ as_of_date() }} then null
            else date_diff('year', birth_date, {{ as_of_date() }})
                - case when strftime(birth_date, '%m%d') > strftime({{ as_of_date() }}, '%m%d') then 1 else 0 end
        end as age

    from customers_as_of

),

final as (

    select
        with_age.customer_id,
        with_age.gender,
        with_age.age,
        {{ band('with_age.age', var('age_band_edges')) }} as age_band,
        with_age.occupation,
        {{ band('with_age.income', var('income_band_edges')) }} as income_band,
        with_age.province,
        with_age.city,
        coalesce(regions.region_en, 'Unknown') as region_en,
        coalesce(regions.region_zh, '未知') as region_zh,
        with_age.created_date,
        date_diff('day', with_age.created_date, {{ as_of_date() }}) as tenure_days,
        with_age.source_system,
        {{ as_of_date() }} as as_of_date,
        {{ config_version() }} as config_version

    from with_age
    left join regions
        on regexp_replace(with_age.province, '(省|市|自治区|壮族自治区|回族自治区|维吾尔自治区|特别行政区)$', '') = regions.province

)

select * from final
