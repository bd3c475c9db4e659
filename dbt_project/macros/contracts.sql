{#- not_null_constraints_on_existing_table(): a pre-hook of every model (dbt_project.yml). An incremental
    table keeps the DDL it was first created with, and DuckDB enforces the constraints of that DDL only: a
    table built before its contract declared a column not_null would go on accepting nulls there. When this
    model is incremental with an enforced contract and its table exists, declare every not_null constraint
    the table lacks (`alter table ... set not null` checks the rows already there, so older bad rows stop
    the run, naming the column). Renders nothing otherwise. -#}
{% macro not_null_constraints_on_existing_table() -%}
    {%- set contract = config.get('contract') -%}
    {%- if execute and contract and contract.enforced and is_incremental() -%}
        {%- set declared = [] -%}
        {%- for column in model.columns.values() -%}
            {%- if column.constraints | selectattr('type', 'equalto', 'not_null') | list -%}
                {%- do declared.append(column.name) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if declared -%}
            {%- set lacking = run_query(
                "select column_name from duckdb_columns() where database_name = '" ~ this.database ~ "'"
                ~ " and schema_name = '" ~ this.schema ~ "' and table_name = '" ~ this.identifier ~ "'"
                ~ " and is_nullable and column_name in ('" ~ declared | join("', '") ~ "')"
            ).columns[0].values() -%}
            {%- for name in lacking %}
                alter table {{ this }} alter column {{ adapter.quote(name) }} set not null;
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
