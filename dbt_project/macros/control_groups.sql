{#- Control groups of alert rules (策略效果评估). A rule with control_share s > 0 (seed alert_rules)
    holds out the customers whose control bucket is below s: they are recorded in
    history.customer_alerts with is_control = true and left out of the outbox, so their outcome
    shows what happens without the action.

    control_bucket(customer_id, rule_id): a number in [0, 1) from the first 8 hex digits of
    md5(customer_id || '|' || rule_id) / 2^32. It depends on the customer and the rule only: the same
    customer is in the same group of a rule on every date, on re-runs and in backfills, and a person
    can recompute it (Python: int(hashlib.md5(f"{customer_id}|{rule_id}".encode()).hexdigest()[:8], 16) / 2**32). -#}
{% macro control_bucket(customer_id, rule_id) -%}
    (cast(('0x' || substr(md5({{ customer_id }} || '|' || {{ rule_id }}), 1, 8)) as ubigint) / 4294967296.0)
{%- endmacro %}

{#- Wilson score interval of a proportion k / n at normal quantile z (bound = 'low' or 'high'). -#}
{% macro wilson_bound(k, n, z, bound) -%}
    case when {{ n }} > 0 then
        ((({{ k }}) * 1.0 / ({{ n }}) + {{ z }} * {{ z }} / (2.0 * ({{ n }})))
         {{ '-' if bound == 'low' else '+' }} {{ z }} * sqrt(
            (({{ k }}) * 1.0 / ({{ n }})) * (1 - ({{ k }}) * 1.0 / ({{ n }})) / ({{ n }})
            + {{ z }} * {{ z }} / (4.0 * ({{ n }}) * ({{ n }}))))
        / (1 + {{ z }} * {{ z }} / ({{ n }}))
    end
{%- endmacro %}
