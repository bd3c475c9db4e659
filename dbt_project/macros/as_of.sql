{#- The run's as-of date, as 'YYYY-MM-DD'. Models never use current_date: any past date can be
    rebuilt. The runner passes it in the environment (CRMTIER_AS_OF_DATE) rather than as a --vars
    value, because a changed var forces dbt to re-parse the whole project on every run; the var
    `as_of_date` is the fallback for dbt commands typed by hand. -#}
{#- Read only when executing (`execute`): dbt records every env var a file reads while parsing and
    re-parses those files when its value changes, i.e. on every new as-of date. -#}
{% macro as_of_literal() -%}
    {%- if execute -%}{{ env_var('CRMTIER_AS_OF_DATE', var('as_of_date')) }}{%- else -%}{{ var('as_of_date') }}{%- endif -%}
{%- endmacro %}

{% macro as_of_date() -%}
    cast('{{ as_of_literal() }}' as date)
{%- endmacro %}

{#- End of the as-of day, for filtering timestamps (naive UTC). The as-of date is a calendar day in
    the business time zone (var business_timezone, default UTC): an order at 2011-03-15 23:30 -05:00
    belongs to 2011-03-16 in UTC and to 2011-03-15 in America/New_York. Staging dates
    (order_date, event_date, created_date) are days in the same zone (macro business_date). -#}
{% macro as_of_end() -%}
    {%- if var("business_timezone") == "UTC" -%}
    (cast('{{ as_of_literal() }}' as date) + interval 1 day)
    {%- else -%}
    timezone('UTC', timezone('{{ var("business_timezone") }}',
        cast(cast('{{ as_of_literal() }}' as date) + interval 1 day as timestamp)))
    {%- endif -%}
{%- endmacro %}

{#- Hash of the thresholds and rule seeds that produced a row (set by the runner). -#}
{% macro config_version() -%}
    '{%- if execute -%}{{ env_var("CRMTIER_CONFIG_VERSION", var("config_version")) }}{%- else -%}{{ var("config_version") }}{%- endif -%}'
{%- endmacro %}

{#- Label a value by sorted band edges: below the first edge, between edges, or at/after the last. -#}
{% macro band(expr, edges, unit='') -%}
    case
        when {{ expr }} is null then 'unknown'
        {%- for edge in edges %}
        when {{ expr }} < {{ edge }} then '{{ "<" ~ edge ~ unit if loop.first else edges[loop.index0 - 1] ~ "-" ~ (edge - 1) ~ unit }}'
        {%- endfor %}
        else '{{ edges[-1] }}+{{ unit }}'
    end
{%- endmacro %}

{#- Mid-rank percentile in (0, 1): (customers below + half the tied ones) / all. Ties share a value
    and a single customer lands in the middle, so heavy ties (many one-order customers) and tiny
    populations stay defined. -#}
{% macro midrank_percentile(expr, higher_is_better=true) -%}
    ((rank() over (order by {{ expr }} {{ 'asc' if higher_is_better else 'desc' }}) - 1
      + 0.5 * count(*) over (partition by {{ expr }}))
     / count(*) over ())
{%- endmacro %}

{#- Quantile score 1..n from the mid-rank percentile. -#}
{% macro quantile_score(expr, n=5, higher_is_better=true) -%}
    least({{ n }}, 1 + floor({{ n }} * {{ midrank_percentile(expr, higher_is_better) }}))::integer
{%- endmacro %}

{#- Score 1..n of a customer under rfm_scoring = threshold: the highest score of seed rfm_thresholds whose
    cut `condition` (an SQL boolean over the customer and `thresholds`) meets; 1 is the floor. -#}
{% macro threshold_score(condition) -%}
    coalesce(max(thresholds.score) filter (where {{ condition }}), 1)::integer
{%- endmacro %}
