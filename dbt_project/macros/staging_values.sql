{#- How staging reads raw text, one definition per rule (the field-warnings model uses the same
    macros, so "a value staging could not read" means exactly what staging does). -#}

{#- Customer id as matched across customers, orders and events: the load's `id_normalize`
    (raw.load_settings, from the mapping's settings.id_normalize; the modes are listed in
    crmtier/mappings.py ID_NORMALIZE_MODES): trim (default), trim_upper or trim_lower. -#}
{% macro normalize_customer_id(id_expr, mode_expr) -%}
    case coalesce({{ mode_expr }}, 'trim')
        when 'trim_upper' then upper(trim({{ id_expr }}))
        when 'trim_lower' then lower(trim({{ id_expr }}))
        else trim({{ id_expr }})
    end
{%- endmacro %}

{#- The reading settings of the load that delivered each row of `raw_alias`: a left join on
    raw.load_settings (loads from before the table existed read as UTC, trim). -#}
{% macro join_load_settings(raw_alias) -%}
    left join {{ source('generic', 'load_settings') }} as load_settings
        on {{ raw_alias }}._load_id = load_settings.load_id
{%- endmacro %}
