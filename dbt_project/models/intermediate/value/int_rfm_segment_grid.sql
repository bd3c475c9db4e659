{#- Every (R, F) cell of the 5 x 5 score grid with the segment the seed rfm_segments maps it to.
    segments_matched counts the seed rows whose ranges cover the cell: a test requires exactly 1,
    so a gap or an overlap left by an edit of the seed fails the build instead of mislabelling customers. -#}
with

segments as (

    select * from {{ ref('rfm_segments') }}

),

score_levels as (

    -- scores run 1-5 (macro quantile_score and seed rfm_thresholds)
    select unnest(range(1, 6)) as score

),

grid as (

    select
        recency_levels.score as r_score,
        frequency_levels.score as f_score

    from score_levels as recency_levels
    cross join score_levels as frequency_levels

),

matched as (

    select
        grid.r_score,
        grid.f_score,
        segments.segment,
        segments.segment_zh,
        segments.priority as segment_priority,
        segments.r_score_min,
        segments.r_score_max,
        segments.f_score_min,
        segments.f_score_max,
        segments.action_en,
        segments.action_zh,
        count(segments.segment) over (partition by grid.r_score, grid.f_score) as segments_matched

    from grid
    left join segments
        on grid.r_score between segments.r_score_min and segments.r_score_max
        and grid.f_score between segments.f_score_min and segments.f_score_max

),

first_match as (

    -- one row per cell even when the seed overlaps (the test on segments_matched reports it)
    select *
    from matched
    qualify row_number() over (partition by r_score, f_score order by segment_priority, segment) = 1

),

final as (

    select
        r_score::varchar || f_score::varchar as rf_cell,
        r_score,
        f_score,
        segment,
        segment_zh,
        segment_priority,
        'R ' || r_score_min || case when r_score_max > r_score_min then '-' || r_score_max else '' end
        || ', F ' || f_score_min || case when f_score_max > f_score_min then '-' || f_score_max else '' end
            as segment_rule,
        action_en,
        action_zh,
        segments_matched

    from first_match

)

select * from final
