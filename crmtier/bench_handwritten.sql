-- The bar: one hand-written DuckDB script computing tiers and status from the landing CSVs, with the
-- same rules and defaults as the pipeline (no gates, no history, no staging tables). It is the limit
-- the pipeline is measured against: an in-memory database, each file read once with its columns typed
-- by the reader (rows that do not cast are skipped, as the pipeline quarantines them), only the
-- columns the question needs kept, orders and events reduced to one row per customer while read.
-- {landing} and {as_of} are filled in by crmtier.bench.
create or replace temp table result as
with customers as (
    select customer_id, min(created_at) as created_at
    from read_csv('{landing}/generic/customers/*.csv', header = true, ignore_errors = true,
                  columns = {'customer_id': 'varchar', 'name': 'varchar', 'gender': 'varchar',
                             'birth_date': 'varchar', 'phone': 'varchar', 'email': 'varchar',
                             'occupation': 'varchar', 'income': 'varchar', 'province': 'varchar',
                             'city': 'varchar', 'created_at': 'timestamp'})
    where customer_id is not null and created_at < date '{as_of}' + interval 1 day
    group by 1
),

orders as (
    select customer_id,
           count(*) filter (where status = 'paid') as frequency,
           sum(case when status = 'paid' then amount * (case coalesce(currency, 'CNY')
               when 'USD' then 7.10 when 'EUR' then 7.70 when 'HKD' then 0.91 when 'GBP' then 9.00
               when 'JPY' then 0.047 else 1 end) else 0 end) as monetary,
           max(order_time::date) filter (where status = 'paid') as last_paid,
           max(order_time::date) as last_order
    from read_csv('{landing}/generic/orders/*.csv', header = true, ignore_errors = true,
                  columns = {'order_id': 'varchar', 'customer_id': 'varchar', 'order_time': 'timestamp',
                             'amount': 'decimal(18, 2)', 'currency': 'varchar', 'status': 'varchar'})
    where amount >= 0 and order_time < date '{as_of}' + interval 1 day
      and status in ('paid', 'refunded', 'cancelled') and customer_id is not null and order_id is not null
    group by 1
),

last_events as (
    select customer_id, max(event_time::date) as last_event
    from read_csv('{landing}/generic/events/*.csv', header = true, ignore_errors = true,
                  columns = {'event_id': 'varchar', 'customer_id': 'varchar', 'event_time': 'timestamp',
                             'event_type': 'varchar', 'channel': 'varchar'})
    where event_time < date '{as_of}' + interval 1 day and customer_id is not null
      and event_type in ('web_visit', 'page_view', 'login', 'email_open', 'email_click', 'campaign_join',
                         'social_interaction', 'support_ticket')
    group by 1
),

per_customer as (
    select c.customer_id, date_diff('day', c.created_at::date, date '{as_of}') as tenure,
           coalesce(o.frequency, 0) as frequency, o.monetary,
           date_diff('day', o.last_paid, date '{as_of}') as recency,
           date_diff('day', greatest(o.last_order, e.last_event), date '{as_of}') as days_since
    from customers c left join orders o using (customer_id) left join last_events e using (customer_id)
),

scored as (
    select customer_id,
           round(((rank() over (order by recency desc) - 1 + 0.5 * count(*) over (partition by recency)) / count(*) over ()
                + (rank() over (order by frequency) - 1 + 0.5 * count(*) over (partition by frequency)) / count(*) over ()
                + (rank() over (order by monetary) - 1 + 0.5 * count(*) over (partition by monetary)) / count(*) over ()) / 3,
                 6) as value_score
    from per_customer where frequency > 0
),

ranked as (
    select customer_id, (rank() over (order by value_score) - 1) / count(*) over () as pct from scored
)

select p.customer_id,
       case when p.tenure < 30 then 'new' when p.frequency = 0 then 'prospect'
            when p.days_since <= 30 then 'active' when p.days_since <= 180 then 'dormant' else 'churned' end as status,
       case when p.tenure < 30 then 'new' when r.pct is null then 'low'
            when r.pct >= 0.95 then 'vip' when r.pct >= 0.80 then 'high' when r.pct >= 0.50 then 'medium'
            else 'low' end as tier
from per_customer p left join ranked r using (customer_id);
