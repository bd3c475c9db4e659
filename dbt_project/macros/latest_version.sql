{#- Keep the latest version of each key among the rows of `relation` (a CTE name): the latest
    export (file modified time), then the latest load, then the last row of the file.
    Almost every key occurs once, so only keys that repeat are ranked: a window over all rows
    would sort tens of millions of rows to keep nearly all of them. -#}
{% macro latest_version(relation, key) -%}
    with repeated_keys as materialized (
        select {{ key }} from {{ relation }} group by {{ key }} having count(*) > 1
    )
    select {{ relation }}.* from {{ relation }} anti join repeated_keys using ({{ key }})
    union all
    select {{ relation }}.* from {{ relation }} semi join repeated_keys using ({{ key }})
    qualify row_number() over (
        partition by {{ key }}
        order by _exported_at desc, _load_seq desc, _row_number desc
    ) = 1
{%- endmacro %}
