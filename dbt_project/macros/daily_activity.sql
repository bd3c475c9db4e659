{#- The per-customer, per-day activity tables (int_customer_daily_orders, int_customer_daily_events) are
    incremental: a run rebuilds every day of the customers whose rows changed since the table's last
    build, and keeps the rest. They hold no as-of date, rate or vocabulary: every as-of date, fx rate
    and window reads them (int_customer_*_aggregated), so any date rebuilds to the same answer. -#}

{#- Customers an incremental run rebuilds (a full build rebuilds everyone and calls this not): the customer
    of every new or changed row of `staged` (a staging model keyed by `key`: a load_seq above the one
    this table has seen) and the customers of the earlier versions of those keys in raw table
    `raw_table` (an order re-exported under another customer leaves the first customer's days). Earlier
    versions are matched on `raw_key`, the raw column staging trims into `key`. -#}
{% macro customers_to_rebuild(staged, key, raw_table, raw_key) -%}
    with changed as materialized (
        select {{ key }}, customer_id from {{ staged }}
        where load_seq > (select coalesce(max(through_load_seq), 0) from {{ this }})
    )
    select customer_id from changed
    union
    select trim({{ normalize_customer_id('raw_rows.customer_id', 'load_settings.id_normalize') }})
    from {{ source('crm', raw_table) }} as raw_rows
    {{ join_load_settings('raw_rows') }}
    semi join changed on trim(raw_rows.{{ raw_key }}) = changed.{{ key }}
{%- endmacro %}

{#- The rows a build writes: the new `activity` rows of the `rebuilt` customers, and on an incremental
    run a placeholder row (customer only) for each rebuilt customer with no activity left (delete+insert
    replaces a customer's rows only when the build has a row for it; readers filter on the day, so it
    counts nothing). A full build rebuilds the customers of its activity rows, so it has none (and
    DuckDB would store every activity row to look: W10 cold, events 4.1 -> 2.2 s). Every row carries
    the staging load sequence `staged` had reached: the next run's watermark. -#}
{% macro rows_of_rebuilt_customers(rebuilt, activity, staged) -%}
    select
        *,
        (select coalesce(max(load_seq), 0) from {{ staged }}) as through_load_seq
    from {{ activity }}
    {%- if is_incremental() %}
    union all by name
    select
        customer_id,
        (select coalesce(max(load_seq), 0) from {{ staged }}) as through_load_seq
    from {{ rebuilt }}
    anti join {{ activity }} using (customer_id)
    {%- endif %}
{%- endmacro %}

{#- Sums of the daily activity rows a customer has (in a group by customer): a count as a bigint (0
    when no day matches `where`), an amount (0 when none), as counting the orders or events would. -#}
{% macro activity_count(column, where=none) -%}
    coalesce(sum({{ column }}){% if where %} filter (where {{ where }}){% endif %}, 0)::bigint
{%- endmacro %}

{% macro activity_amount(expr, where=none) -%}
    coalesce(sum({{ expr }}){% if where %} filter (where {{ where }}){% endif %}, 0)
{%- endmacro %}
