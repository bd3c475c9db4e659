{#- Keep, for each key, every row of its latest load (the latest export by file modified time,
    then the latest load): the rows of one load that share a key are the lines of one order, so
    a redelivered invoice replaces all its lines at once, never line by line. Generic files cannot
    repeat a key within one load (ingest quarantines it), so there this equals latest_version.
    Only keys that occur more than once are ranked (found on 64-bit hashes, like latest_version). -#}
{% macro latest_load_rows(relation, key) -%}
    with repeated_hashes as materialized (
        select hash({{ key }}) as key_hash from {{ relation }} group by 1 having count(*) > 1
    )
    select {{ relation }}.* from {{ relation }}
    anti join repeated_hashes on hash({{ relation }}.{{ key }}) = repeated_hashes.key_hash
    union all
    select {{ relation }}.* from {{ relation }}
    semi join repeated_hashes on hash({{ relation }}.{{ key }}) = repeated_hashes.key_hash
    qualify rank() over (partition by {{ key }} order by _exported_at desc, _load_seq desc) = 1
{%- endmacro %}
