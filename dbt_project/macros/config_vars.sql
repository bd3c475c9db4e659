{#- The value of var `name`, failing the compile unless it is one of `allowed`: a typo in a var must
    not silently pick a branch of a model. -#}
{% macro var_one_of(name, allowed) -%}
    {%- set value = var(name) -%}
    {%- if value not in allowed -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be '" ~ allowed | join("' or '") ~ "', got " ~ value) }}
    {%- endif -%}
    {{- return(value) -}}
{%- endmacro %}
