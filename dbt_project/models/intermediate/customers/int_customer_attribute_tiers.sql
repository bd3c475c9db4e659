-- Tiers from customer attributes (seed tier_attribute_rules) for customers the purchase-based rules
-- cannot judge: customer_tiers uses them for customers without a net purchase. One row per customer
-- matching at least one rule: the best tier among the rules it matches.
with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

attribute_rules as (

    select * from {{ ref('tier_attribute_rules') }}

),

tier_rules as (

    select * from {{ ref('tier_rules') }}

),

attribute_values as (

    -- each rule's attribute, as text, for each customer (null when the customer has no such value)
    select
        customers.customer_id,
        attribute_rules.rule_id,
        attribute_rules.tier,
        attribute_rules.attribute,
        attribute_rules.operator,
        attribute_rules.value as rule_value,
        case attribute_rules.attribute
            when 'income' then cast(customers.income as varchar)
            when 'occupation' then customers.occupation
            when 'province' then customers.province
            when 'city' then customers.city
            when 'gender' then customers.gender
            else json_extract_string(customers.extra_attributes, '$."' || attribute_rules.attribute || '"')
        end as attribute_value

    from customers
    cross join attribute_rules

),

matched as (

    select
        attribute_values.*,
        tier_rules.tier_rank
    from attribute_values
    inner join tier_rules on attribute_values.tier = tier_rules.tier
    where {{ attribute_rule_matches('attribute_value', 'operator', 'rule_value') }}

),

final as (

    select
        customer_id,
        tier as attribute_tier,
        rule_id as attribute_rule_id,
        'attribute rule ' || rule_id || ': ' || attribute || ' ' || attribute_value || ' ' || operator || ' '
        || rule_value || ' -> ' || tier as attribute_tier_reason

    from matched
    qualify row_number() over (partition by customer_id order by tier_rank, rule_id) = 1

)

select * from final
