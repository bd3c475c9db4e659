-- The bar: one hand-written DuckDB script computing tiers and status from the landing CSVs,
-- with the same rules and defaults as the pipeline (no gates, no history, no staging tables).
-- {landing} and {as_of} are filled in by crmtier.bench.
create or replace temp table customers as
select customer_id, cast(created_at as timestamp) as created_at
from read_csv('{landing}/generic/customers/*.csv', all_varchar = true, header = true)
where nullif(trim(customer_id), '') is not null and try_cast(created_at as timestamp) is not null
  and cast(created_at as timestamp) < date '{as_of}' + interval 1 day
qualify row_number() over (partition by customer_id order by created_at) = 1;

create or replace temp table orders as
select customer_id, cast(cast(order_time as timestamp) as date) as order_date, lower(status) = 'paid' as is_paid,
       case when lower(status) = 'paid' then cast(amount as decimal(18, 2)) * (case upper(coalesce(nullif(currency, ''), 'CNY'))
           when 'USD' then 7.10 when 'EUR' then 7.70 when 'HKD' then 0.91 when 'GBP' then 9.00 when 'JPY' then 0.047 else 1 end)
           else 0 end as net
from read_csv('{landing}/generic/orders/*.csv', all_varchar = true, header = true)
where try_cast(amount as decimal(18, 2)) >= 0 and try_cast(order_time as timestamp) < date '{as_of}' + interval 1 day
  and lower(status) in ('paid', 'refunded', 'cancelled') and nullif(trim(customer_id), '') is not null
  and nullif(trim(order_id), '') is not null;

create or replace temp table last_events as
select customer_id, max(cast(cast(event_time as timestamp) as date)) as last_event
from read_csv('{landing}/generic/events/*.csv', all_varchar = true, header = true)
where try_cast(event_time as timestamp) < date '{as_of}' + interval 1 day
  and lower(event_type) in ('web_visit', 'page_view', 'login', 'email_open', 'email_click', 'campaign_join',
                            'social_interaction', 'support_ticket')
group by 1;

create or replace temp table per_customer as
with o as (
    select customer_id, count(*) filter (where is_paid) as frequency, sum(net) as monetary,
           max(order_date) filter (where is_paid) as last_paid, max(order_date) as last_order
    from orders group by 1
)
select c.customer_id, date_diff('day', cast(c.created_at as date), date '{as_of}') as tenure,
       coalesce(o.frequency, 0) as frequency, o.monetary, date_diff('day', o.last_paid, date '{as_of}') as recency,
       date_diff('day', greatest(o.last_order, e.last_event), date '{as_of}') as days_since
from customers c left join o using (customer_id) left join last_events e using (customer_id);

create or replace temp table scored as
select customer_id,
       round(((rank() over (order by recency desc) - 1 + 0.5 * count(*) over (partition by recency)) / count(*) over ()
            + (rank() over (order by frequency) - 1 + 0.5 * count(*) over (partition by frequency)) / count(*) over ()
            + (rank() over (order by monetary) - 1 + 0.5 * count(*) over (partition by monetary)) / count(*) over ()) / 3, 6) as value_score
from per_customer where frequency > 0;

create or replace temp table result as
select p.customer_id,
       case when p.tenure < 30 then 'new' when p.frequency = 0 then 'prospect'
            when p.days_since <= 30 then 'active' when p.days_since <= 180 then 'dormant' else 'churned' end as status,
       case when p.tenure < 30 then 'new' when s.pct is null then 'low'
            when s.pct >= 0.95 then 'vip' when s.pct >= 0.80 then 'high' when s.pct >= 0.50 then 'medium' else 'low' end as tier
from per_customer p
left join (select customer_id, (rank() over (order by value_score) - 1) / count(*) over () as pct from scored) s
    using (customer_id);
