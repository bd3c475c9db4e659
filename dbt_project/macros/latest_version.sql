{#- Keep the latest version of each key among the rows of `relation` (a CTE name): the latest
    export (file modified time), then the latest load, then the last row of the file.
    Almost every key occurs once, so only keys that repeat are ranked: a window over all rows
    would sort tens of millions of rows to keep nearly all of them. Repeats are found on 64-bit
    hashes (cheaper to group than the key strings); rows whose hash repeats are ranked by the key
    itself, so a hash collision only costs a little ranking, never a wrong answer. -#}
{% macro latest_version(relation, key) -%}
    with repeated_hashes as materialized (
        select hash({{ key }}) as key_hash from {{ relation }} group by 1 having count(*) > 1
    )
    select {{ relation }}.* from {{ relation }}
    anti join repeated_hashes on hash({{ relation }}.{{ key }}) = repeated_hashes.key_hash
    union all
    select {{ relation }}.* from {{ relation }}
    semi join repeated_hashes on hash({{ relation }}.{{ key }}) = repeated_hashes.key_hash
    qualify row_number() over (
        partition by {{ key }}
        order by _exported_at desc, _load_seq desc, _row_number desc
    ) = 1
{%- endmacro %}
