{#- Incremental history tables (schema `history`) replace whole as-of dates, so re-running a date
    never duplicates rows and rows that no longer exist for that date disappear.

    delete_history_dates(column, include_next_date=false): a pre-hook deleting the rows of this
    run's as-of date (and, with include_next_date, of the next as-of date already present in
    history.customer_history: its transitions were compared against the date this run replaces).
    A no-op (`select 1`) on the first build, when the table does not exist yet. -#}
{% macro delete_history_dates(column, include_next_date=false) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ column }} = {{ as_of_date() }}
        {%- if include_next_date %}
            or {{ column }} = ({{ next_history_as_of_date() }})
        {%- endif %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The first as-of date in history after this run's date (null when this run is the latest). -#}
{% macro next_history_as_of_date() -%}
    select min(as_of_date) from {{ ref('customer_history') }} where as_of_date > {{ as_of_date() }}
{%- endmacro %}

{#- `value` matches a rule cell: `*` (anything), one value, or values separated by `|`. -#}
{% macro rule_value_matches(rule_cell, value) -%}
    ({{ rule_cell }} = '*' or list_contains(string_split({{ rule_cell }}, '|'), {{ value }}))
{%- endmacro %}
