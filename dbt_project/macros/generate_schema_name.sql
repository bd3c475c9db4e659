{#- Schemas are named exactly as configured (staging, intermediate, marts, config), not <target>_<name>. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name is not none else target.schema }}
{%- endmacro %}
