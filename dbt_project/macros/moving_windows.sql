{#- Behaviour windows moved by the day (int_customer_orders_aggregated, int_customer_events_aggregated).

    A window model sums each customer's day rows up to the as-of date, over windows of N days before it.
    Moving the as-of date from P to D changes the sums of a customer only if it has a day row
      - in (min(P, D), max(P, D)]: the row enters or leaves "up to the as-of date", or
      - in (min(P, D) - N, max(P, D) - N] for a window of N days: the row enters or leaves that window,
    or if its day rows changed since the last build (their through_load_seq is above the one the build
    read). So a build recomputes those customers from all their day rows, exactly as a full build
    would, and keeps every other customer's row as the last build wrote it: a daily run reads the new
    days, the days leaving the windows and the customers they touch, not all of history.

    Every row records what its build read (windows_as_of, windows_key, through_load_seq). The build
    starts from scratch when there is no last build, on --full-refresh, when the key differs (the
    model's SQL, the window vars, the runner's config version or a keyed seed such as fx_rates changed),
    or when the day table's load sequence went back (it was rebuilt from other data). -#}

{#- What the last build of this model read, if a build can start from it: a dict with as_of (the last
    as-of date, 'YYYY-MM-DD') and through_load_seq, or none to recompute every customer. `day_table` is
    the day table's relation, `key` this build's windows_key. -#}
{% macro windows_last_build(day_table, key) -%}
    {#- a unit test builds from its given rows only -#}
    {%- if not execute or flags.FULL_REFRESH or model.resource_type == 'unit_test' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- if existing is none
          or 'windows_key' not in (adapter.get_columns_in_relation(existing) | map(attribute='name') | list) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set last = run_query(
        "select strftime(windows_as_of, '%Y-%m-%d'), windows_key, through_load_seq,"
        ~ " (select max(through_load_seq) from " ~ day_table ~ ") from " ~ existing ~ " limit 1") -%}
    {%- if last.rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set as_of, last_key, through_load_seq, day_table_seq = last.rows[0] -%}
    {%- if last_key != key or day_table_seq is none or day_table_seq < through_load_seq -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return({'as_of': as_of, 'through_load_seq': through_load_seq}) }}
{%- endmacro %}

{#- A hash of everything a window model's answer depends on besides the day rows and the as-of date:
    its SQL, the runner's config version, the vars named in `config_vars` and the content of the
    relations `keyed_on` (small seeds). -#}
{% macro windows_key(config_vars, keyed_on=[]) -%}
    {%- if not execute or model.resource_type == 'unit_test' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set parts = [model.raw_code, config_version()] -%}
    {%- for name in config_vars -%}
        {%- do parts.append(name ~ '=' ~ tojson(var(name))) -%}
    {%- endfor -%}
    {%- for relation in keyed_on -%}
        {#- absent (e.g. compiled for a linter): the build itself needs it, so nothing is kept wrongly -#}
        {%- if adapter.get_relation(database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
            {%- set content = run_query("select string_agg(seed_row::varchar, '|' order by seed_row::varchar) from "
                                        ~ relation ~ " as seed_row") -%}
            {%- do parts.append(content.rows[0][0] | string) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(local_md5(parts | join('\n'))) }}
{%- endmacro %}

{#- Customers a build that starts from `last_build` recomputes (see the top of this file): those with a
    new or changed row in the day table `days` or a day row on a day that enters or leaves the as-of
    range or one of the windows (`window_days`, numbers of days). -#}
{% macro customers_whose_windows_moved(last_build, days, window_days) -%}
    {%- set earlier = "least(date '" ~ last_build.as_of ~ "', " ~ as_of_date() ~ ")" -%}
    {%- set later = "greatest(date '" ~ last_build.as_of ~ "', " ~ as_of_date() ~ ")" -%}
    select distinct customer_id
    from {{ days }}
    where through_load_seq > {{ last_build.through_load_seq }}
        or (activity_date > {{ earlier }} and activity_date <= {{ later }})
        {%- for days_in_window in window_days | unique %}
        or (activity_date > {{ earlier }} - {{ days_in_window }} and activity_date <= {{ later }} - {{ days_in_window }})
        {%- endfor %}
{%- endmacro %}

{#- The rows a window model writes: the `recomputed` rows (of the customers in `moved`), and after a
    last build that build's rows of every other customer; each with what this build read (as-of
    date, `key`, the day table `days`' load sequence). -#}
{% macro rows_moved_and_kept(last_build, recomputed, moved, days, key) -%}
    {%- set days_load_seq = '(select coalesce(max(through_load_seq), 0) from ' ~ days ~ ')' -%}
    select
        *,
        {{ as_of_date() }} as windows_as_of,
        '{{ key }}' as windows_key,
        {{ days_load_seq }} as through_load_seq
    from {{ recomputed }}
    {%- if last_build is not none %}
    union all by name
    select
        * replace (
            {{ as_of_date() }} as windows_as_of,
            {{ days_load_seq }} as through_load_seq
        )
    from {{ this }}
    anti join {{ moved }} using (customer_id)
    {%- endif %}
{%- endmacro %}

{#- Keeps the day rows of the customers in `moved` when a build starts from the last one (nothing to
    filter on a full build). `customer_id` is the day rows' customer column. -#}
{% macro only_moved_customers(last_build, moved, customer_id) -%}
    {%- if last_build is not none -%}
    semi join {{ moved }} on {{ customer_id }} = {{ moved }}.customer_id
    {%- endif -%}
{%- endmacro %}
