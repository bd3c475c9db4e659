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
