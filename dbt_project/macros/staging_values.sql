{#- How staging reads raw text, one definition per rule (the field-warnings model uses the same
    macros, so "a value staging could not read" means exactly what staging does). -#}

{#- Customer id as matched across customers, orders and events: the load's `id_normalize`
    (raw.load_settings, from the mapping's settings.id_normalize; the modes are listed in
    crmtier/ingest/mappings.py ID_NORMALIZE_MODES): trim (default), trim_upper or trim_lower. -#}
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
    left join {{ source('crm', 'load_settings') }} as load_settings
        on {{ raw_alias }}._load_id = load_settings.load_id
{%- endmacro %}

{#- A timestamp written after its time of day with an offset or zone: Z, UTC, GMT, +08:00, -0500,
    + 08:00 after a space, Europe/Berlin, optionally followed by an RFC 9557 [Area/Location]. -#}
{% macro written_zone_pattern() -%}
    '(?i)\d:\d\d(:\d\d([.,]\d+)?)?\s*(z|utc|gmt|[+-]\d\d(:?\d\d)?|[a-z_]+(/[a-z0-9_+-]+)+)(\[[^\]]*\])?$'
{%- endmacro %}

{#- A timestamp text as naive UTC. A written offset or zone wins (DuckDB reads it as timestamptz);
    a time of day without one is in the load's zone (`zone_expr`: the mapping's settings.timezone,
    from raw.load_settings); a bare calendar day is midnight, unshifted (a day is not an instant;
    crmtier/ingest/parsing.py does the same for vendor files). Ingest quarantines what this cannot read
    (crmtier/ingest/row_rules.py `_unreadable_timestamp`). -#}
{% macro utc_timestamp(text_expr, zone_expr) -%}
    case
        when regexp_matches(trim({{ text_expr }}), {{ written_zone_pattern() }})
            then timezone('UTC', cast(
                regexp_replace(regexp_replace(trim({{ text_expr }}), '\[[^\]]*\]$', ''), '\s+([+-]\d)', '\1')
                as timestamptz))
        -- naive and UTC (the common case), or a bare calendar day: no zone arithmetic
        when coalesce({{ zone_expr }}, 'UTC') = 'UTC' or not regexp_matches({{ text_expr }}, '\d:\d\d')
            then cast({{ text_expr }} as timestamp)
        else timezone('UTC', timezone({{ zone_expr }}, cast({{ text_expr }} as timestamp)))
    end
{%- endmacro %}

{#- The calendar day of a naive UTC timestamp in the business time zone (var business_timezone):
    the day an as-of date means (macros/as_of.sql as_of_end). -#}
{% macro business_date(utc_expr) -%}
    {%- if var("business_timezone") == "UTC" -%}
    cast({{ utc_expr }} as date)
    {%- else -%}
    cast(timezone('{{ var("business_timezone") }}', timezone('UTC', {{ utc_expr }})) as date)
    {%- endif -%}
{%- endmacro %}

{#- Key of an event exported without an id: `nk-` and a hash of customer, UTC time, type and channel
    as staging normalises them. Two id-less rows alike in all four are one event. -#}
{% macro event_natural_key(customer_id_expr, utc_expr, type_expr, channel_expr) -%}
    'nk-' || md5(concat_ws('|', {{ customer_id_expr }}, strftime({{ utc_expr }}, '%Y-%m-%d %H:%M:%S'),
        lower(trim({{ type_expr }})), coalesce(nullif(lower(trim({{ channel_expr }})), ''), '')))
{%- endmacro %}

{#- Optional typed customer fields: staging reads them with these; a value present but unreadable
    becomes null in staging and a row of stg_crm__field_warnings (reported per run). -#}
{% macro read_date(expr) -%}
    try_cast(nullif(trim({{ expr }}), '') as date)
{%- endmacro %}

{% macro read_number(expr) -%}
    try_cast(nullif(trim({{ expr }}), '') as double)
{%- endmacro %}

{% macro read_gender(expr) -%}
    case upper(trim({{ expr }})) when 'M' then 'M' when 'F' then 'F' end
{%- endmacro %}

{#- Whether an attribute value meets a rule of seed tier_attribute_rules: >=, >, <=, < compare numbers
    (a value that is not a number never matches), = and in compare text case-insensitively (`in` takes
    values separated by |). -#}
{% macro attribute_rule_matches(value_expr, operator_expr, rule_value_expr) -%}
    coalesce(case {{ operator_expr }}
        when '>=' then try_cast({{ value_expr }} as double) >= try_cast({{ rule_value_expr }} as double)
        when '>' then try_cast({{ value_expr }} as double) > try_cast({{ rule_value_expr }} as double)
        when '<=' then try_cast({{ value_expr }} as double) <= try_cast({{ rule_value_expr }} as double)
        when '<' then try_cast({{ value_expr }} as double) < try_cast({{ rule_value_expr }} as double)
        when '=' then lower(trim({{ value_expr }})) = lower(trim({{ rule_value_expr }}))
        when 'in' then list_contains(
            list_transform(string_split({{ rule_value_expr }}, '|'), lambda item: lower(trim(item))),
            lower(trim({{ value_expr }})))
    end, false)
{%- endmacro %}
