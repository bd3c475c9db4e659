with

scores as (

    select * from {{ ref('customer_value_scores') }}

),

segment_grid as (

    select * from {{ ref('int_rfm_segment_grid') }}

),

segmented as (

    select
        scores.customer_id,
        scores.as_of_date,
        scores.recency_days,
        scores.frequency,
        scores.monetary,
        scores.r_score,
        scores.f_score,
        scores.m_score,
        scores.rfm_cell,
        segment_grid.segment,
        segment_grid.segment_zh,
        segment_grid.segment_priority,
        segment_grid.segment_rule,
        segment_grid.action_en,
        segment_grid.action_zh,
        scores.rfm_scoring,
        scores.config_version

    from scores
    left join segment_grid
        on scores.r_score = segment_grid.r_score
        and scores.f_score = segment_grid.f_score

),

explained as (

    select
        *,
        'R=' || r_score || ' F=' || f_score || ' → ' || coalesce(segment, 'no segment')
        || coalesce(' (' || segment_rule || ')', ' (no row of seed rfm_segments covers this cell)')
        || '; recency ' || recency_days || ' days, ' || frequency || ' orders, spend '
        || printf('%.2f', monetary) || ' (' || rfm_scoring || ' scores)' as segment_reason

    from segmented

),

final as (

    select
        customer_id,
        as_of_date,
        r_score,
        f_score,
        m_score,
        rfm_cell,
        segment,
        segment_zh,
        segment_priority,
        segment_rule,
        segment_reason,
        action_en,
        action_zh,
        config_version

    from explained

)

select * from final
