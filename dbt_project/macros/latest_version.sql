{#- Keep the latest version of each key among the rows of `relation` (a CTE name): the latest export
    (file modified time), then the latest load, then (whole_load = false) the last row of the file.
    whole_load = true keeps every row of the key's latest load instead: the rows of one load that share
    a key are the lines of one order, so a redelivered invoice replaces all its lines at once, never
    line by line (generic files cannot repeat a key within one load: ingest quarantines it).
    Almost every key occurs once, so only keys that repeat are ranked: a window over all rows would
    sort tens of millions of rows to keep nearly all of them. Repeats are found on 64-bit hashes
    (cheaper to group than the key strings); rows whose hash repeats are ranked by the key itself, so a
    hash collision only costs a little ranking, never a wrong answer. -#}
{% macro latest_version(relation, key, whole_load=false) -%}
    with repeated_hashes as materialized (
        select hash({{ key }}) as key_hash from {{ relation }} group by key_hash having count(*) > 1
    )
    select {{ relation }}.* from {{ relation }}
    anti join repeated_hashes on hash({{ relation }}.{{ key }}) = repeated_hashes.key_hash
    union all
    select {{ relation }}.* from {{ relation }}
    semi join repeated_hashes on hash({{ relation }}.{{ key }}) = repeated_hashes.key_hash
    {%- if whole_load %}
    qualify rank() over (partition by {{ key }} order by _exported_at desc, _load_seq desc) = 1
    {%- else %}
    qualify row_number() over (
        partition by {{ key }}
        order by _exported_at desc, _load_seq desc, _row_number desc
    ) = 1
    {%- endif %}
{%- endmacro %}

{#- The rows of `relation` a staging model ranks: on an incremental run every version of the keys touched
    by loads the table has not seen yet (a load_seq above the table's), ranked again exactly as a full
    refresh ranks them; on a full build every row.
    `relation` is read twice here (on an incremental run) and twice again by latest_version, and DuckDB
    materialises a CTE read twice: all of raw, computed and stored on every build. So a staging model's
    source CTE is `not materialized`: an incremental run prunes the first read to the new loads by
    _load_seq (20M events, no new rows: 9.0 -> 0.4 s), and a full build computes only the keys for
    latest_version's repeated hashes (W10 cold, alone: events 11.5 -> 8.4 s, orders 10.1 -> 7.1 s). -#}
{% macro rows_of_changed_keys(relation, key) -%}
    {%- if is_incremental() -%}
    select {{ relation }}.*
    from {{ relation }}
    semi join (
        select distinct {{ key }}
        from {{ relation }}
        where _load_seq > (select coalesce(max(load_seq), 0) from {{ this }})
    ) as changed_keys on {{ relation }}.{{ key }} = changed_keys.{{ key }}
    {%- else -%}
    select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- The load sequence a staging build has seen: the largest of raw.load_log. Every row a build writes
    carries it, so the last build's rows carry the largest (test unique_among_rebuilt checks their keys):
    a build writes rows only for keys of a load newer than the table's rows, so after a new load. -#}
{% macro staged_through_load_seq() -%}
    (select coalesce(max(load_seq), 0) from {{ source('crm', 'load_log') }})
{%- endmacro %}
