{#- Did the action work? Per alert rule: reactivation rate of treated (sent) vs control (held out)
    alerts whose window has ended, with 95% Wilson intervals of each rate and Newcombe's interval of
    the difference (hybrid score method, built from the two Wilson intervals). Groups smaller than
    control_min_group_size are reported as too small to tell, never as an effect. -#}
{%- set z = var('control_confidence_z') -%}
{%- set min_n = var('control_min_group_size') -%}
with

outcomes as (

    select * from {{ ref('alert_outcomes') }}

),

rules as (

    select * from {{ ref('alert_rules') }}

),

counted as (

    select
        rule_id,
        count(*) filter (where is_window_complete and not is_control) as treated_alerts,
        count(*) filter (where is_window_complete and not is_control and is_reactivated) as treated_reactivated,
        count(*) filter (where is_window_complete and is_control) as control_alerts,
        count(*) filter (where is_window_complete and is_control and is_reactivated) as control_reactivated,
        count(*) filter (where is_window_complete and is_win_back) as win_backs,
        count(*) filter (where not is_window_complete) as pending_alerts

    from outcomes
    group by rule_id

),

rated as (

    select
        rules.rule_id,
        rules.action,
        rules.control_share,
        counted.treated_alerts,
        counted.treated_reactivated,
        counted.control_alerts,
        counted.control_reactivated,
        counted.win_backs,
        counted.pending_alerts,
        case when counted.treated_alerts > 0 then counted.treated_reactivated / counted.treated_alerts end
            as treated_rate,
        case when counted.control_alerts > 0 then counted.control_reactivated / counted.control_alerts end
            as control_rate,
        {{ wilson_bound('counted.treated_reactivated', 'counted.treated_alerts', z, 'low') }} as treated_rate_low,
        {{ wilson_bound('counted.treated_reactivated', 'counted.treated_alerts', z, 'high') }} as treated_rate_high,
        {{ wilson_bound('counted.control_reactivated', 'counted.control_alerts', z, 'low') }} as control_rate_low,
        {{ wilson_bound('counted.control_reactivated', 'counted.control_alerts', z, 'high') }} as control_rate_high

    from rules
    inner join counted on rules.rule_id = counted.rule_id

),

compared as (

    select
        *,
        treated_rate - control_rate as rate_difference,
        treated_rate - control_rate
        - sqrt(power(treated_rate - treated_rate_low, 2) + power(control_rate_high - control_rate, 2))
            as difference_low,
        treated_rate - control_rate
        + sqrt(power(treated_rate_high - treated_rate, 2) + power(control_rate - control_rate_low, 2))
            as difference_high

    from rated

),

final as (

    select
        rule_id,
        action,
        control_share,
        {{ var('control_outcome_window_days') }} as window_days,
        treated_alerts,
        treated_reactivated,
        treated_rate,
        treated_rate_low,
        treated_rate_high,
        control_alerts,
        control_reactivated,
        control_rate,
        control_rate_low,
        control_rate_high,
        rate_difference,
        difference_low,
        difference_high,
        win_backs,
        pending_alerts,
        case
            when control_share = 0 then 'no control group (control_share 0): the effect cannot be measured'
            when treated_alerts < {{ min_n }} or control_alerts < {{ min_n }}
                then 'too few alerts to tell: ' || treated_alerts || ' treated and ' || control_alerts
                    || ' control with a complete window; at least {{ min_n }} of each are needed'
            when difference_low > 0
                then 'the action works: treated reactivated more than control (95% CI of the '
                    || 'difference above 0)'
            when difference_high < 0 then 'treated reactivated less than control (95% CI of the difference below 0)'
            else 'no clear difference between treated and control (95% CI of the difference includes 0)'
        end as verdict,
        {{ as_of_date() }} as as_of_date,
        {{ config_version() }} as config_version

    from compared

)

select * from final
