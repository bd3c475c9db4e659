"""Customers of an orders-only export (mapping key ``derive_customers``).

Some exports have no customers file (an invoice-level shop export): each distinct customer id
of the orders is one customer, created at its first order.  After every orders load of such a
source, ingest writes one ``raw.customers`` row per customer id of that load, with
``created_at`` = the earliest ``order_time`` of that id over every order loaded so far from the
source (so the latest row, which staging keeps, always carries the first order), and logs it
as its own load in ``raw.load_log`` (``<orders load id>-customers``, entity ``customers``,
the orders file as file name) so the raw gate checks it like a file.  Ids that a real customers
file of the source already has are left to that file.
"""
from __future__ import annotations

import json


def derive_customers(con, source: str, orders) -> list:
    """Derive customers from the orders load ``orders`` (an ingest FileOutcome); returns the
    outcome of the derived load ([] when the mapping does not ask for it)."""
    from crmtier.ingest.landing import FileOutcome, _insert_log
    from crmtier.ingest.vendor import load_mapping

    mapping = load_mapping(source)
    if "orders" not in mapping.entities or not mapping.entity("orders").derive_customers:
        return []
    load_id = f"{orders.load_id}-customers"
    exported_at = con.execute("select exported_at from raw.load_log where load_id = ?",
                              [orders.load_id]).fetchone()[0]
    marker = json.dumps({"_derived_from": f"orders/{orders.file_name}"})
    con.execute("begin transaction")
    try:
        con.execute("delete from raw.customers where _load_id = ?", [load_id])
        con.execute("delete from raw.load_log where load_id = ?", [load_id])
        inserted = con.execute("""
            insert into raw.customers by name
            with this_load as (
                select customer_id, min(_row_number) as first_row
                from raw.orders where _load_id = ? group by customer_id
            ),
            first_orders as (
                select orders.customer_id, min(orders.order_time) as created_at
                from raw.orders as orders semi join this_load using (customer_id)
                where orders._source = ?
                group by orders.customer_id
            ),
            from_customer_files as (
                select distinct customer_id from raw.customers
                where _source = ? and coalesce(_extra, '') not like '{"_derived_from"%'
            )
            select this_load.customer_id, first_orders.created_at,
                   ? as _source, ? as _file_name, ? as _file_hash, this_load.first_row as _row_number,
                   ? as _load_id, (select coalesce(max(load_seq), 0) + 1 from raw.load_log) as _load_seq,
                   ? as _exported_at, ? as _extra
            from this_load
            join first_orders using (customer_id)
            anti join from_customer_files using (customer_id)""",
            [orders.load_id, source, source, source, orders.file_name, orders.file_hash, load_id,
             exported_at, marker]).fetchone()[0]
        outcome = FileOutcome(source, "customers", orders.file_name, orders.file_hash, load_id, "loaded",
                              rows_in=inserted, rows_loaded=inserted, rows_quarantined=0,
                              message=f"customers derived from orders/{orders.file_name}: one per customer id, "
                                      "created_at = first order time")
        if inserted:
            _insert_log(con, outcome, exported_at, [])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return [outcome] if inserted else []
