"""Vendor files: round trips, encodings, mapping files and a corpus of bad inputs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from crmtier.ingest.encodings import detect_encoding, read_table, read_text_table
from crmtier.ingest.errors import FileRejected
from crmtier.ingest.mappings import MappingError, list_sources, load_mapping
from crmtier.ingest.vendor import NormalizedFile, normalize_file
from crmtier.samples.vendor_export import write_vendor_export

pytestmark = pytest.mark.unit

VENDORS = ["generic", "fxiaoke", "zoho_crm", "salesforce", "hubspot"]

CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["C001", "C002", "C003", "C004"],
        "name": ["张三", "Alice Smith", "Mary Ann Lee", "李 四"],
        "gender": ["M", "F", None, "F"],
        "birth_date": ["1990-01-02", "1985-12-31", None, "2000-02-29"],
        "phone": ["+8613812345678", "+8613912345678", None, "+861012345678"],
        "email": ["zhang@example.cn", None, "mary@example.org", "li@example.cn"],
        "occupation": ["工程师", "Manager", None, "教师"],
        "income": ["120000", None, "50000", "8000-10000"],
        "province": ["广东", "Zhejiang", None, "北京"],
        "city": ["深圳", "Hangzhou", None, "北京"],
        "created_at": ["2024-08-19 09:41:05", "2023-01-01 00:00:00", "2024-02-29 23:59:59", "2020-06-30 12:00:00"],
    },
    dtype="str",
)
ORDERS = pd.DataFrame(
    {
        "order_id": ["O1", "O2", "O3", "O4"],
        "customer_id": ["C001", "C002", "C003", "C001"],
        "order_time": ["2024-08-19 09:41:05", "2024-03-04 12:00:00", "2024-12-31 23:59:59", "2024-01-01 00:00:00"],
        "amount": ["1234.50", "0.99", "1000000.00", "0.00"],
        "currency": ["CNY", "USD", "CNY", "CNY"],
        "status": ["paid", "refunded", "cancelled", "paid"],
    },
    dtype="str",
)
EVENTS = pd.DataFrame(
    {
        "event_id": ["E1", "E2", "E3"],
        "customer_id": ["C001", "C003", "C002"],
        "event_time": ["2024-08-19 09:41:05", "2024-01-02 03:04:05", "2024-07-04 18:30:00"],
        "event_type": ["email_open", "support_ticket", "page_view"],
        "channel": ["email", "微信", None],
    },
    dtype="str",
)
FRAMES = {"customers": CUSTOMERS, "orders": ORDERS, "events": EVENTS}


def as_records(df: pd.DataFrame, columns: list[str]) -> list[list]:
    sub = df[columns].astype(object)
    return sub.where(sub.notna(), None).values.tolist()


def check_invariant(nf: NormalizedFile) -> None:
    assert nf.rows_in == len(nf.rows) + len(nf.quarantined)
    assert list(nf.quarantined.columns) == ["_row_number", "reason", "raw_values"]
    assert set(nf.rows["_row_number"]).isdisjoint(set(nf.quarantined["_row_number"]))


# ---------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("source", VENDORS)
@pytest.mark.parametrize("entity", ["customers", "orders", "events"])
def test_round_trip(tmp_path, source, entity):
    paths = write_vendor_export(FRAMES, tmp_path, source)
    assert set(paths) == set(FRAMES)
    nf = normalize_file(paths[entity], source, entity, customers_lookup=CUSTOMERS)
    check_invariant(nf)
    assert nf.quarantined.empty, nf.quarantined.to_dict("records")
    expected = FRAMES[entity]
    cols = list(expected.columns)
    assert list(nf.rows.columns) == cols + ["_row_number", "_extra"]
    assert as_records(nf.rows, cols) == as_records(expected, cols)
    assert list(nf.rows["_row_number"]) == list(range(1, len(expected) + 1))
    assert nf.rows_in == len(expected)


def test_vendor_files_look_like_the_vendor(tmp_path):
    fx = write_vendor_export(FRAMES, tmp_path / "fx", "fxiaoke")
    raw = fx["orders"].read_bytes()
    text = raw.decode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    header = text.splitlines()[0]
    assert header.startswith("销售订单编号,客户名称,客户手机,下单日期")
    assert "客户编号" not in header  # orders name the customer (name + phone), not its id
    assert "张三,13812345678," in text
    assert '"¥1,234.50"' in text and "已付款" in text and "张三" in text
    assert "1990年1月2日" in fx["customers"].read_bytes().decode("gb18030")

    hs = write_vendor_export(FRAMES, tmp_path / "hs", "hubspot")
    assert hs["customers"].read_bytes().startswith(b"\xef\xbb\xbf")
    assert "closedwon" in hs["orders"].read_text("utf-8-sig")
    assert "08/19/2024 09:41:05 AM" in hs["orders"].read_text("utf-8-sig")

    sf = write_vendor_export(FRAMES, tmp_path / "sf", "salesforce")
    sf_text = sf["customers"].read_text("utf-8")
    assert sf_text.startswith("Id,FirstName,LastName")
    assert "2024-08-19T09:41:05.000Z" in sf_text
    assert ",Alice,Smith," in sf_text and ",,张三," in sf_text

    zo = write_vendor_export(FRAMES, tmp_path / "zo", "zoho_crm")
    assert zo["customers"].suffix == ".xlsx"
    wb = openpyxl.load_workbook(zo["customers"])
    assert wb.sheetnames == ["Contacts"]
    assert [c.value for c in wb["Contacts"][1]][:3] == ["Record Id", "First Name", "Last Name"]
    assert "19/08/2024 09:41:05" in zo["orders"].read_text("utf-8")


def test_round_trip_with_timezone_and_decimal_comma(tmp_path):
    user = tmp_path / "sources"
    user.mkdir()
    text = (Path(__file__).resolve().parents[1] / "crmtier" / "sources" / "generic.yaml").read_text("utf-8")
    text = text.replace("source: generic", "source: euro").replace("timezone: UTC", "timezone: Asia/Shanghai")
    text = text.replace('decimal_separator: "."', 'decimal_separator: ","')
    text = text.replace('amount: {prefix: "", thousands: ""}', 'amount: {prefix: "", suffix: " €", thousands: "."}')
    (user / "euro.yaml").write_text(text, "utf-8")
    paths = write_vendor_export(FRAMES, tmp_path / "out", "euro", search_dirs=[user])
    body = paths["orders"].read_text("utf-8")
    assert "1.000.000,00 €" in body
    assert "2024-08-19 17:41:05" in body  # UTC 09:41:05 written as Beijing time
    nf = normalize_file(paths["orders"], "euro", "orders", search_dirs=[user])
    assert as_records(nf.rows, list(ORDERS.columns)) == as_records(ORDERS, list(ORDERS.columns))


# ---------------------------------------------------------------------------------------
# encodings and formats


@pytest.mark.parametrize(
    "source, encoding, fmt, expected_encoding",
    [
        ("fxiaoke", "gb18030", "csv", "gb18030"),
        ("generic", "gb18030", "csv", "gb18030"),  # no preferred encoding: detection alone
        ("fxiaoke", "utf-8-sig", "csv", "utf-8-sig"),
        ("fxiaoke", "utf-8", "csv", "utf-8"),
        ("fxiaoke", "utf-16-le", "txt", "utf-16-le"),  # Excel "Unicode text"
        ("fxiaoke", "utf-16-be", "txt", "utf-16-be"),
        ("hubspot", "utf-16", "tsv", "utf-16-le"),
        ("salesforce", "utf-8", "tsv", "utf-8"),
    ],
)
def test_encodings_round_trip(tmp_path, source, encoding, fmt, expected_encoding):
    paths = write_vendor_export(FRAMES, tmp_path, source, file_format=fmt, encoding=encoding)
    for entity, path in paths.items():
        assert path.suffix == "." + fmt
        nf = normalize_file(path, source, entity, customers_lookup=CUSTOMERS)
        if path.read_bytes().isascii():
            assert nf.encoding == "utf-8"  # nothing tells ASCII apart from UTF-8 / GB18030
        else:
            assert nf.encoding == expected_encoding
        assert nf.delimiter == ("\t" if fmt in ("tsv", "txt") else ",")
        assert nf.quarantined.empty
        cols = list(FRAMES[entity].columns)
        assert as_records(nf.rows, cols) == as_records(FRAMES[entity], cols)


def test_utf16_without_bom_and_small_gbk_file(tmp_path):
    p = tmp_path / "nobom.txt"
    p.write_bytes("customer_id\tname\nC1\t张三\n".encode("utf-16-le"))
    assert detect_encoding(p) == "utf-16-le"
    q = tmp_path / "be.txt"
    q.write_bytes("customer_id\tname\nC1\t张三\n".encode("utf-16-be"))
    assert detect_encoding(q) == "utf-16-be"
    # charset-normalizer calls tiny GBK files cp949 (Korean); they are read as GB18030
    g = tmp_path / "tiny.csv"
    g.write_bytes("客户编号,客户名称\nC1,张三\n".encode("gbk"))
    assert detect_encoding(g) == "gb18030"
    header, rows = read_text_table(g)
    assert header == ["客户编号", "客户名称"] and rows == [["C1", "张三"]]


def test_semicolon_and_crlf_and_quoted_newlines(tmp_path):
    p = tmp_path / "semi.csv"
    p.write_bytes(b'customer_id;name;city;created_at\r\nC1;"Smith; John";"Hang\r\nzhou";2024-01-01\r\n'
                  b'C2;Li;Beijing;2024-01-02\r\n')
    table = read_table(p)
    assert table.delimiter == ";"
    assert table.rows == [["C1", "Smith; John", "Hang\nzhou", "2024-01-01"], ["C2", "Li", "Beijing", "2024-01-02"]]
    nf = normalize_file(p, "generic", "customers")
    assert list(nf.rows["city"]) == ["Hang zhou", "Beijing"]  # inner whitespace collapsed
    assert list(nf.rows["name"]) == ["Smith; John", "Li"]


def test_xlsx_typed_cells_and_excel_serials(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Deals"
    ws.append(["Record Id", "Contact Name.id", "Closing Date", "Amount", "Stage", "Currency"])
    import datetime as dt

    ws.append(["D1", "C001", dt.datetime(2024, 8, 19, 9, 41, 5), 1234.5, "Closed Won", "CNY"])
    ws.append([1002, "C002", 45523.40347, 12, "Closed Lost", None])  # serial as a plain number
    ws.append(["D3", "C003", "19/08/2024", "1,000.00", "Refunded", "USD"])
    other = wb.create_sheet("Notes")
    other.append(["ignore me"])
    p = tmp_path / "deals.xlsx"
    wb.save(p)
    nf = normalize_file(p, "zoho_crm", "orders")
    check_invariant(nf)
    assert nf.encoding == "xlsx" and nf.sheet == "Deals"
    assert as_records(nf.rows, ["order_id", "order_time", "amount", "currency", "status"]) == [
        ["D1", "2024-08-19 09:41:05", "1234.50", "CNY", "paid"],
        ["1002", "2024-08-19 09:41:00", "12.00", "USD", "cancelled"],  # USD: the mapping's default
        ["D3", "2024-08-19 00:00:00", "1000.00", "USD", "refunded"],
    ]


def test_xlsx_sheet_from_mapping(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "Summary"
    wb.active.append(["nothing here"])
    ws = wb.create_sheet("Contacts")
    ws.append(["Record Id", "First Name", "Last Name"])
    ws.append(["C9", "Ann", "Lee"])
    p = tmp_path / "contacts.xlsx"
    wb.save(p)
    user = tmp_path / "src"
    user.mkdir()
    (user / "zoho_sheet.yaml").write_text(textwrap.dedent("""
        entities:
          customers:
            sheet: Contacts
            columns:
              customer_id: [Record Id]
              name: {concat: [[First Name], [Last Name]]}
    """), "utf-8")
    nf = normalize_file(p, "zoho_sheet", "customers", search_dirs=[user])
    assert as_records(nf.rows, ["customer_id", "name"]) == [["C9", "Ann Lee"]]


# ---------------------------------------------------------------------------------------
# mappings


def test_packaged_sources_load():
    assert set(VENDORS) <= set(list_sources())
    for source in VENDORS:
        m = load_mapping(source)
        assert set(m.entities) == {"customers", "orders", "events"}
        text = m.path.read_text("utf-8")
        assert text.lstrip().startswith("#")  # documented at the top
    fx = load_mapping("fxiaoke")
    assert fx.entities["orders"].currency == "CNY"
    assert fx.entities["orders"].customer_match == ("customer_id", "name", "phone")


def test_user_dir_overrides_and_adds_sources(tmp_path, monkeypatch):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "my_crm.yaml").write_text(textwrap.dedent("""
        # my CRM
        settings: {date_order: dmy, currency: EUR}
        entities:
          orders:
            columns:
              order_id: [Bestellnummer]
              customer_id: [Kundennummer]
              order_time: [Datum]
              amount: [Betrag]
              status: [Status]
            vocab:
              status: {paid: [bezahlt], refunded: [erstattet], cancelled: [storniert]}
    """), "utf-8")
    (user / "generic.yaml").write_text("entities:\n  customers:\n    columns:\n      customer_id: [kid]\n", "utf-8")
    monkeypatch.setenv("CRMTIER_SOURCES_DIR", str(user))
    assert "my_crm" in list_sources()
    assert load_mapping("generic").path == user / "generic.yaml"  # user dir first
    data = tmp_path / "o.csv"
    data.write_text("Bestellnummer,Kundennummer,Datum,Betrag,Status\nB1,K1,03/04/2024,\"12,50 €\",bezahlt\n", "utf-8")
    nf = normalize_file(data, "my_crm", "orders")
    # decimal separator is '.' by default, so "12,50" is refused rather than guessed
    assert nf.quarantined["reason"].tolist() == ["unparseable_amount: amount='12,50 €' (not a number (decimal separator '.'))"]
    data.write_text("Bestellnummer,Kundennummer,Datum,Betrag,Status\nB1,K1,03/04/2024,12.50 €,bezahlt\n", "utf-8")
    nf = normalize_file(data, "my_crm", "orders")
    assert as_records(nf.rows, list(ORDERS.columns)) == [["B1", "K1", "2024-04-03 00:00:00", "12.50", "EUR", "paid"]]


@pytest.mark.parametrize(
    "yaml_text, message_parts",
    [
        ("entities: [1, 2]", ["key 'entities'"]),
        ("entities:\n  orders:\n    columns:\n      amount: 5\n", ["key 'entities.orders.columns.amount'"]),
        ("entities:\n  orders:\n    columns:\n      order_id: [a]\n      price: [b]\n",
         ["key 'entities.orders.columns.price'", "not a canonical orders column"]),
        ("settings: {date_order: ydm}\nentities:\n  customers: {columns: {customer_id: [id]}}\n",
         ["key 'settings.date_order'", "dmy, mdy, ymd"]),
        ("entities:\n  customers:\n    columns: {customer_id: [id]}\n    date_order: xx\n",
         ["key 'entities.customers.date_order'"]),
        ("entities:\n  orders:\n    columns: {order_id: [a], customer_id: [b], order_time: [c], amount: [d], status: [e]}\n"
         "    vocab: {status: {shipped: [x]}}\n", ["key 'entities.orders.vocab.status.shipped'"]),
        ("entities:\n  orders:\n    columns: {order_id: [a], customer_id: [a], order_time: [c], amount: [d], status: [e]}\n",
         ["header 'a' is also mapped to 'order_id'"]),
        ("entities:\n  orders:\n    columns: {order_id: [a], order_time: [c], amount: [d], status: [e]}\n",
         ["key 'entities.orders.required'", "'customer_id'"]),
        ("entities:\n  customers: {columns: {customer_id: [id]}}\nsettings: {timezone: Mars/Base}\n",
         ["key 'settings.timezone'", "Mars/Base"]),
        ("entities:\n  customers: {columns: {customer_id: [id]}}\nexport: {format: pdf}\n", ["key 'export.format'"]),
        ("entitles:\n  customers: {}\n", ["key 'entitles'", "unknown top-level key"]),
        ("source: other\nentities:\n  customers: {columns: {customer_id: [id]}}\n", ["key 'source'"]),
        ("entities: {customers: {columns: {customer_id: [id]}}\n", ["not valid YAML"]),
    ],
)
def test_malformed_mapping_names_file_and_key(tmp_path, yaml_text, message_parts):
    p = tmp_path / "broken.yaml"
    p.write_text(yaml_text, "utf-8")
    with pytest.raises(MappingError) as exc:
        load_mapping("broken", search_dirs=[tmp_path])
    message = str(exc.value)
    assert str(p) in message
    for part in message_parts:
        assert part in message


def test_unknown_source_and_entity(tmp_path):
    with pytest.raises(MappingError, match="no mapping file for source 'nope'"):
        load_mapping("nope", search_dirs=[tmp_path])
    (tmp_path / "only_customers.yaml").write_text("entities:\n  customers: {columns: {customer_id: [id]}}\n", "utf-8")
    f = tmp_path / "x.csv"
    f.write_text("id\nC1\n", "utf-8")
    with pytest.raises(MappingError, match="no mapping for entity 'orders'"):
        normalize_file(f, "only_customers", "orders", search_dirs=[tmp_path])


# ---------------------------------------------------------------------------------------
# bad inputs: file level

ORDERS_HEADER = "order_id,customer_id,order_time,amount,currency,status"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(content, str):
        p.write_text(content, "utf-8", newline="")
    else:
        p.write_bytes(content)
    return p


FILE_REJECTIONS = [
    ("empty", "generic", "orders", "e.csv", b"", "empty file"),
    ("whitespace only", "generic", "orders", "e.csv", b"\r\n\r\n  \r\n", "empty file"),
    ("header only", "generic", "orders", "h.csv", ORDERS_HEADER + "\r\n", "empty file (header only, no data rows)"),
    ("header and blank rows", "generic", "orders", "h.csv", ORDERS_HEADER + "\n,,,,,\n\n", "no data rows"),
    ("pipe delimited", "generic", "orders", "p.csv",
     ORDERS_HEADER.replace(",", "|") + "\nO1|C1|2024-01-01|1|CNY|paid\n", "wrong delimiter"),
    ("unterminated quote", "generic", "orders", "t.csv",
     ORDERS_HEADER + '\nO1,C1,2024-01-01,1,CNY,paid\nO2,C1,2024-01-01,"1,CNY,paid\n',
     "truncated last line: unterminated quoted field in the record starting at line 3"),
    ("short last record", "generic", "orders", "t.csv",
     ORDERS_HEADER + "\nO1,C1,2024-01-01,1,CNY,paid\nO2,C1,2024-01", "truncated last line: the last record (line 3) has 3 fields"),
    ("runaway quote mid-file", "generic", "orders", "r.csv",
     ORDERS_HEADER + '\nO1,C1,"2024-01-01,1,CNY,paid\nO2,C1,2024-01-01,1,CNY,paid\nO3,C1,2024-01-01,1,CNY,"paid\nO4,C1,2024-01-01,1,CNY,paid\n',
     "malformed quoting"),
    ("broken utf-8 byte", "generic", "customers", "u.csv",
     ("customer_id,name\n" + "".join(f"C{i},张三{i}\n" for i in range(30))).encode("utf-8") + b"C99,\xe5\xbc\n",
     "undecodable bytes: UTF-8 text with 1 invalid byte sequence"),
    ("missing required column (Chinese headers)", "fxiaoke", "orders", "o.csv",
     "销售订单编号,客户编号,下单日期,订单状态\nS1,C1,2024-01-01,已付款\n".encode("gb18030"),
     "required column 'amount' not found"),
    ("missing customer reference", "fxiaoke", "orders", "o.csv",
     "销售订单编号,下单日期,销售订单金额(元),订单状态\nS1,2024-01-01,1,已付款\n".encode("gb18030"),
     "required column 'customer_id' not found"),
    ("missing id column", "generic", "customers", "c.csv", "name,phone\n张三,13812345678\n", "required column 'customer_id'"),
    ("names without lookup", "fxiaoke", "orders", "o.csv",
     "销售订单编号,客户名称,下单日期,销售订单金额(元),订单状态\nS1,张三,2024-01-01,1,已付款\n".encode("gb18030"),
     "no customers_lookup"),
    ("legacy xls", "generic", "orders", "x.xls", b"\xd0\xcf\x11\xe0", "legacy .xls"),
    ("corrupt xlsx", "generic", "orders", "x.xlsx", b"PK\x03\x04 not really a zip", "cannot read xlsx"),
]


def test_a_file_of_delimiters_only_with_a_declared_delimiter_is_rejected_naming_it(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b",,\n,,\n")  # the sniffer is skipped: the mapping declares the delimiter
    with pytest.raises(FileRejected, match="no header: every line is blank"):
        read_table(path, {"delimiter": ","})


@pytest.mark.parametrize("label, source, entity, name, content, fragment", FILE_REJECTIONS, ids=[c[0] for c in FILE_REJECTIONS])
def test_file_rejections(tmp_path, label, source, entity, name, content, fragment):
    p = _write(tmp_path, name, content)
    with pytest.raises(FileRejected) as exc:
        normalize_file(p, source, entity)
    assert fragment in str(exc.value)
    assert str(p) in str(exc.value)


def test_missing_column_message_names_mapping_and_accepted_headers(tmp_path):
    p = _write(tmp_path, "o.csv", "销售订单编号,客户编号,下单日期,订单状态\nS1,C1,2024-01-01,已付款\n".encode("gb18030"))
    with pytest.raises(FileRejected) as exc:
        normalize_file(p, "fxiaoke", "orders")
    msg = str(exc.value)
    assert str(load_mapping("fxiaoke").path) in msg
    assert "entities.orders.columns.amount" in msg
    assert "'销售订单金额(元)'" in msg and "'订单金额'" in msg
    assert "Headers in the file: '销售订单编号'" in msg


def test_declared_encoding_mismatch_is_rejected(tmp_path):
    user = tmp_path / "src"
    user.mkdir()
    (user / "strict.yaml").write_text(
        "settings: {encoding: utf-8}\nentities:\n  customers: {columns: {customer_id: [客户编号], name: [客户名称]}}\n", "utf-8"
    )
    p = _write(tmp_path, "c.csv", "客户编号,客户名称\nC1,张三\n".encode("gbk"))
    with pytest.raises(FileRejected, match="undecodable bytes for encoding utf-8: byte offset 0"):
        normalize_file(p, "strict", "customers", search_dirs=[user])


def test_xlsx_file_level_problems(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["order_id", "customer_id", "order_time", "amount", "currency", "status"])
    p = tmp_path / "h.xlsx"
    wb.save(p)
    with pytest.raises(FileRejected, match="header only, no data rows"):
        normalize_file(p, "generic", "orders")
    with pytest.raises(FileRejected, match="sheet 'Deals' not found; sheets: Sheet"):
        read_table(p, sheet="Deals")


# ---------------------------------------------------------------------------------------
# bad inputs: row level (exact reasons and counts)


def _rows(header: str, *lines: str) -> str:
    return "\n".join([header, *lines]) + "\n"


ROW_CASES = [
    # label, source, entity, csv text, expected loaded ids, expected [(row_number, reason)]
    ("missing order id", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,CNY,paid", ",C1,2024-01-01,1,CNY,paid"),
     ["O1"], [(2, "missing_id: order_id")]),
    ("unparseable date", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-13-45,1,CNY,paid", "O2,C1,2024-01-01,1,CNY,paid"),
     ["O2"], [(1, "unparseable_date: order_time='2024-13-45' (invalid month 13)")]),
    ("impossible leap day", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2023-02-29 10:00,1,CNY,paid"),
     [], [(1, "unparseable_date: order_time='2023-02-29 10:00' (invalid day 29 for 2023-02)")]),
    ("ambiguous day/month in a ymd source", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,3/4/2024,1,CNY,paid"),
     [], [(1, "unparseable_date: order_time='3/4/2024' (year-last date but date_order is ymd (declare dmy or mdy))")]),
    ("non-numeric amount", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,abc,CNY,paid"),
     [], [(1, "unparseable_amount: amount='abc' (not a number (decimal separator '.'))")]),
    ("negative amount", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,-5.00,CNY,refunded", "O2,C1,2024-01-01,5,CNY,refunded"),
     ["O2"], [(1, "negative_amount: amount='-5.00'")]),
    ("accounting negative", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,(12.00),CNY,paid"),
     [], [(1, "negative_amount: amount='(12.00)'")]),
    ("unknown status", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,CNY,shipped", "O2,C1,2024-01-01,1,CNY,PAID"),
     ["O2"], [(1, "unknown_status: 'shipped'")]),
    ("empty required value", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,,CNY,paid"),
     [], [(1, "missing_required: amount")]),
    ("missing customer id", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,,2024-01-01,1,CNY,paid"),
     [], [(1, "missing_id: customer_id")]),
    ("bad currency", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,元宝,paid", "O2,C1,2024-01-01,1,usd,paid"),
     ["O2"], [(1, "unknown_currency: '元宝'")]),
    ("duplicate id keeps the first", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,CNY,paid", "O2,C1,2024-01-01,1,CNY,paid", "O1,C1,2024-01-01,1,CNY,paid"),
     ["O1", "O2"], [(3, "duplicate_id_in_file: O1")]),
    ("duplicate after an invalid first copy loads the valid one", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,bad,1,CNY,paid", "O1,C1,2024-01-01,1,CNY,paid"),
     ["O1"], [(1, "unparseable_date: order_time='bad' (unrecognised date format)")]),
    ("several problems in one row", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-02-30,-1,CNY,lost"),
     [], [(1, "unparseable_date: order_time='2024-02-30' (invalid day 30 for 2024-02); "
              "negative_amount: amount='-1'; unknown_status: 'lost'")]),
    ("extra non-empty field", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,CNY,paid,surprise", "O2,C1,2024-01-01,1,CNY,paid"),
     ["O2"], [(1, "field_count: expected 6 fields, got 7")]),
    ("missing field mid-file", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,paid", "O2,C1,2024-01-01,1,CNY,paid"),
     ["O2"], [(1, "field_count: expected 6 fields, got 5")]),
    ("trailing empty fields are tolerated", "generic", "orders",
     _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,CNY,paid,,", "O2,C1,2024-01-01,1,CNY,paid"),
     ["O1", "O2"], []),
    ("excluded deal stage", "hubspot", "orders",
     _rows("Record ID,Associated Contact IDs,Close Date,Amount,Deal Stage",
           "D1,C1,08/19/2024,10,appointmentscheduled", "D2,C1,08/19/2024,10,Closed Won"),
     ["D2"], [(1, "excluded_status: 'appointmentscheduled'")]),
    ("unknown event type", "salesforce", "events",
     _rows("Id,WhoId,CreatedDate,TaskSubtype", "T1,C1,2024-08-19T09:41:05Z,Email Open", "T2,C1,2024-08-19T09:41:05Z,Telepathy"),
     ["T1"], [(2, "unknown_event_type: 'Telepathy'")]),
    ("excluded event type", "salesforce", "events",
     _rows("Id,WhoId,CreatedDate,TaskSubtype", "T1,C1,2024-08-19T09:41:05Z,Call"),
     [], [(1, "excluded_event_type: 'Call'")]),
    ("dmy source reads 03/04 as 3 April; mdy-only date is impossible", "zoho_crm", "orders",
     _rows("Record Id,Contact Name.id,Closing Date,Amount,Stage", "D1,C1,03/04/2024,1,Closed Won", "D2,C1,12/31/2024,1,Closed Won"),
     ["D1"], [(2, "unparseable_date: order_time='12/31/2024' (invalid month 31)")]),
]


@pytest.mark.parametrize("label, source, entity, text, loaded, quarantined", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_row_level_outcomes(tmp_path, label, source, entity, text, loaded, quarantined):
    p = _write(tmp_path, "in.csv", text)
    nf = normalize_file(p, source, entity)
    check_invariant(nf)
    id_col = {"customers": "customer_id", "orders": "order_id", "events": "event_id"}[entity]
    assert list(nf.rows[id_col]) == loaded
    assert list(zip(nf.quarantined["_row_number"], nf.quarantined["reason"])) == quarantined
    assert nf.rows_in == len(loaded) + len(quarantined)


def test_quarantine_keeps_raw_values_and_row_numbers(tmp_path):
    text = _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,CNY,paid", "", ",,,,,", " O2 ,C1,2024-01-01,¥-1,CNY,paid")
    nf = normalize_file(_write(tmp_path, "q.csv", text), "generic", "orders")
    check_invariant(nf)
    assert nf.rows_in == 2  # blank records are skipped but keep their place in the numbering
    assert list(nf.quarantined["_row_number"]) == [4]
    assert json.loads(nf.quarantined["raw_values"][0]) == {
        "order_id": " O2 ", "customer_id": "C1", "order_time": "2024-01-01", "amount": "¥-1", "currency": "CNY", "status": "paid",
    }


def test_customer_matching_by_name_and_phone(tmp_path):
    lookup = pd.DataFrame(
        {"customer_id": ["C1", "C2", "C3", "C4"], "name": ["张三", "李四", "李四", "王五"],
         "phone": ["+8613800000001", "+8613800000002", "+8613800000003", None]},
        dtype="str",
    )
    header = "销售订单编号,客户编号,客户名称,客户手机,下单日期,销售订单金额(元),订单状态"
    text = _rows(
        header,
        "S1,,张三,,2024-01-01,1,已付款",              # unique name
        "S2,,李四,,2024-01-01,1,已付款",              # ambiguous name
        "S3,,李四,138 0000 0003,2024-01-01,1,已付款",  # name + phone disambiguate
        "S4,,赵六,,2024-01-01,1,已付款",              # unknown name
        "S5,,,13800000002,2024-01-01,1,已付款",        # phone only
        "S6,C9,张三,,2024-01-01,1,已付款",            # an id wins over the name (not checked here)
        "S7,,张三,13800000002,2024-01-01,1,已付款",    # name and phone disagree
        "S8,,,,2024-01-01,1,已付款",                  # nothing at all
        "S9,,ＺＨＡＮＧ,,2024-01-01,1,已付款",
    )
    p = _write(tmp_path, "o.csv", text.encode("gb18030"))
    nf = normalize_file(p, "fxiaoke", "orders", customers_lookup=lookup)
    check_invariant(nf)
    assert as_records(nf.rows, ["order_id", "customer_id"]) == [["S1", "C1"], ["S3", "C3"], ["S5", "C2"], ["S6", "C9"]]
    assert list(zip(nf.quarantined["_row_number"], nf.quarantined["reason"])) == [
        (2, "ambiguous_customer: name='李四' matches 2 customers"),
        (4, "unmatched_customer: name='赵六'"),
        (7, "unmatched_customer: name='张三', phone='+8613800000002'"),
        (8, "missing_id: customer_id"),
        (9, "unmatched_customer: name='ZHANG'"),
    ]
    assert nf.encoding == "gb18030"


def test_soft_problems_do_not_quarantine(tmp_path):
    header = "customer_id,name,gender,phone,birth_date,created_at,Owner,Level"
    text = _rows(header, "C1,张三,unknown,12,1990-01-01,2024-01-01,王经理,", "C2,李四,女士,138-0000-0002,,2024-01-01,,A")
    nf = normalize_file(_write(tmp_path, "c.csv", text), "generic", "customers")
    check_invariant(nf)
    assert nf.quarantined.empty
    assert nf.extra_columns == ["Owner", "Level"]
    assert as_records(nf.rows, ["customer_id", "gender", "phone"]) == [["C1", None, None], ["C2", None, "+8613800000002"]]
    assert json.loads(nf.rows["_extra"][0]) == {"Owner": "王经理", "_invalid": {"gender": "unknown", "phone": "12"}}
    # generic's gender vocabulary has 女 but not 女士: unknown -> empty, kept in _extra
    assert json.loads(nf.rows["_extra"][1]) == {"Level": "A", "_invalid": {"gender": "女士"}}
    fx = normalize_file(_write(tmp_path, "f.csv", "客户编号,性别,创建时间\nC2,女士,2024-01-01\n".encode("gb18030")), "fxiaoke", "customers")
    assert list(fx.rows["gender"]) == ["F"] and fx.rows["_extra"].isna().all()


def test_renamed_headers_case_and_space_insensitive(tmp_path):
    text = _rows(" Order ID ,CUSTOMER-ID,Order_Time,amount,Currency,STATUS", "O1,C1,2024-01-01,1,,paid")
    nf = normalize_file(_write(tmp_path, "o.csv", text), "generic", "orders")
    assert as_records(nf.rows, list(ORDERS.columns)) == [["O1", "C1", "2024-01-01 00:00:00", "1.00", "CNY", "paid"]]


def test_currency_from_symbol_then_default(tmp_path):
    text = _rows("order_id,customer_id,order_time,amount,status", "O1,C1,2024-01-01,$5,paid", "O2,C1,2024-01-01,5,paid")
    nf = normalize_file(_write(tmp_path, "o.csv", text), "generic", "orders")
    assert list(nf.rows["currency"]) == ["USD", "CNY"]


def test_generated_event_ids_and_duplicate_deliveries(tmp_path):
    header = "Contact ID,Activity date,Activity type,Source"
    line = "C1,08/19/2024 09:41:05 AM,Email opened,newsletter"
    text = _rows(header, line, "C2,08/19/2024 09:41:05 AM,Email clicked,newsletter", line)
    nf = normalize_file(_write(tmp_path, "e.csv", text), "hubspot", "events")
    check_invariant(nf)
    ids = list(nf.rows["event_id"])
    assert len(ids) == 2 and all(i.startswith("gen-") for i in ids) and ids[0] != ids[1]
    assert nf.quarantined["reason"].tolist() == [f"duplicate_id_in_file: {ids[0]}"]
    again = normalize_file(_write(tmp_path, "e2.csv", _rows(header, line)), "hubspot", "events")
    assert list(again.rows["event_id"]) == [ids[0]]  # stable across files


def test_name_concat_and_alternatives(tmp_path):
    text = _rows("Id,FirstName,LastName,Name,CreatedDate", "1,Ann,Lee,,2024-01-01", "2,,王,,2024-01-01",
                 "3,Bob,Ray,Robert Ray,2024-01-01")
    nf = normalize_file(_write(tmp_path, "c.csv", text), "salesforce", "customers")
    assert list(nf.rows["name"]) == ["Ann Lee", "王", "Robert Ray"]  # Name wins when filled, else First + Last
    text = _rows("Id,FirstName,LastName,CreatedDate", "1,Ann,Lee,2024-01-01", "2,,王,2024-01-01")
    nf = normalize_file(_write(tmp_path, "c2.csv", text), "salesforce", "customers")
    assert list(nf.rows["name"]) == ["Ann Lee", "王"]


def test_a_large_vendor_file_round_trips(tmp_path):
    n = 20_000
    orders = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(n)],
            "customer_id": [f"C{i % 500:03d}" for i in range(n)],
            "order_time": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}" for i in range(n)],
            "amount": [f"{(i * 37) % 100000}.{i % 100:02d}" for i in range(n)],
            "currency": ["CNY"] * n,
            "status": ["paid", "refunded", "cancelled", "paid"] * (n // 4),
        },
        dtype="str",
    )
    customers = pd.DataFrame({"customer_id": [f"C{i:03d}" for i in range(500)], "name": [f"客户{i}" for i in range(500)]}, dtype="str")
    paths = write_vendor_export({"customers": customers, "orders": orders}, tmp_path, "fxiaoke")
    nf = normalize_file(paths["orders"], "fxiaoke", "orders", customers_lookup=customers)
    assert nf.quarantined.empty and len(nf.rows) == n
    assert as_records(nf.rows, list(orders.columns)) == as_records(orders, list(orders.columns))


@pytest.mark.parametrize("source", ["fxiaoke", "salesforce", "zoho_crm"])
def test_non_canonical_values_are_written_verbatim_and_quarantined_again(tmp_path, source):
    """generate_frames injects bad rows; a vendor export must keep them bad, not crash."""
    orders = pd.concat(
        [
            ORDERS,
            pd.DataFrame(
                {
                    "order_id": ["B1", "B2", "B3", "B4", "B5"],
                    "customer_id": ["C001", "C001", "C001", "C001", ""],
                    "order_time": ["not-a-date", "2024-01-01 00:00:00", "2024-01-01 00:00:00", "2024-01-01 00:00:00",
                                   "2024-01-01 00:00:00"],
                    "amount": ["1.00", "abc", "-12.30", "1.00", "1.00"],
                    "currency": ["CNY", "CNY", "CNY", "CNY", "CNY"],
                    "status": ["paid", "paid", "paid", "shipped", "paid"],
                },
                dtype="str",
            ),
        ],
        ignore_index=True,
    )
    paths = write_vendor_export({"customers": CUSTOMERS, "orders": orders}, tmp_path, source)
    assert paths["orders"].parent == tmp_path / source / "orders"
    nf = normalize_file(paths["orders"], source, "orders", customers_lookup=CUSTOMERS)
    check_invariant(nf)
    assert list(nf.rows["order_id"]) == list(ORDERS["order_id"])
    codes = [r.split(":")[0] for r in nf.quarantined["reason"]]
    assert codes == ["unparseable_date", "unparseable_amount", "negative_amount", "unknown_status", "missing_id"]
    assert list(nf.quarantined["_row_number"]) == [5, 6, 7, 8, 9]


def test_fxiaoke_orders_tell_namesakes_apart_by_phone(tmp_path):
    customers = pd.DataFrame(
        {"customer_id": ["C1", "C2", "C3"], "name": ["王伟", "王伟", "王伟"],
         "phone": ["+8613800000001", "+8613800000002", None]},
        dtype="str",
    )
    orders = pd.DataFrame(
        {"order_id": ["O1", "O2", "O3"], "customer_id": ["C1", "C2", "C3"],
         "order_time": ["2024-01-01 00:00:00"] * 3, "amount": ["1.00"] * 3, "currency": ["CNY"] * 3,
         "status": ["paid"] * 3},
        dtype="str",
    )
    paths = write_vendor_export({"customers": customers, "orders": orders}, tmp_path, "fxiaoke")
    nf = normalize_file(paths["orders"], "fxiaoke", "orders", customers_lookup=customers)
    assert as_records(nf.rows, ["order_id", "customer_id"]) == [["O1", "C1"], ["O2", "C2"]]
    assert nf.quarantined["reason"].tolist() == ["ambiguous_customer: name='王伟' matches 3 customers"]


def test_currency_words_and_codes(tmp_path):
    text = _rows(ORDERS_HEADER, "O1,C1,2024-01-01,1,人民币,paid", "O2,C1,2024-01-01,1,$,paid", "O3,C1,2024-01-01,1,eur,paid",
                 "O4,C1,2024-01-01,1,Euro,paid")
    nf = normalize_file(_write(tmp_path, "o.csv", text), "generic", "orders")
    assert list(nf.rows["currency"]) == ["CNY", "USD", "EUR"]
    assert nf.quarantined["reason"].tolist() == ["unknown_currency: 'Euro'"]
