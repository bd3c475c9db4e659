{#- Generic data tests used by the history models (dbt_utils is not available). -#}

{#- No two rows share the values of `columns` (a composite key). -#}
{% test combination_is_unique(model, columns) %}

    select
        {{ columns | join(', ') }},
        count(*) as duplicate_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1

{% endtest %}

{#- Every row satisfies a SQL boolean expression (failing rows are returned). -#}
{% test rows_satisfy(model, expression) %}

    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)

{% endtest %}

{#- dbt's `where` config of a data test (dbt's own macro, overridden as dbt's docs show), with the placeholder
    __as_of_date__ replaced by the run's as-of date when the test runs: a test of a table that grows by one
    date per run can check the date the run wrote instead of all of history. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where | replace('__as_of_date__', as_of_date()) }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
