"""Mask contact fields (name, phone, e-mail) in what reports and logs show.

Personal data live only in the warehouse's raw and staging layers and in the outbox. Reports (the
quarantine samples) show raw rows to explain why they were set aside: their contact fields are
masked, keeping enough to recognise a value (`何*`, `*********14`, `h***@outlook.com`).
A field is a contact field by its header (our column names, and every alias of a name, phone or
e-mail column in the source mappings, e.g. 客户名称, 手机, 邮箱) or by its look (an e-mail address, a
phone-like run of 7 to 15 digits), so a header nobody mapped is still caught for phones and e-mails.
"""
from __future__ import annotations

import functools
import json
import re

CONTACT_COLUMNS = {"name", "customer_name", "first_name", "last_name", "full_name", "contact_name",
                   "phone", "customer_phone", "mobile", "telephone", "email", "customer_email"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d \-()]{5,}\d(?![\w]|\.\d)")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}.*|\d{1,2}-\d{1,2}-\d{4}.*")


@functools.lru_cache(maxsize=1)
def contact_headers() -> frozenset[str]:
    """Our contact column names and the headers the source mappings map to them (lowercase)."""
    headers = set(CONTACT_COLUMNS)
    try:
        from crmtier.ingest.mappings import list_sources, load_mapping

        for source in list_sources():
            mapping = load_mapping(source)
            for entity in mapping.entities.values():
                for column, spec in entity.columns.items():
                    if column in CONTACT_COLUMNS:
                        headers.update(spec.all_headers())
    except Exception:  # noqa: BLE001 - masking by column name and by look still applies
        pass
    return frozenset(h.strip().lower() for h in headers)


def mask_value(value: str) -> str:
    text = str(value)
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    if sum(ch.isdigit() for ch in text) >= 5:
        digits = sum(ch.isdigit() for ch in text)
        seen = 0
        out = []
        for ch in text:
            if ch.isdigit():
                seen += 1
                out.append(ch if seen > digits - 2 else "*")
            else:
                out.append(ch)
        return "".join(out)
    return text[:1] + "*" * max(len(text) - 1, 1)


def _is_phone(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return 7 <= digits <= 15 and bool(_PHONE.fullmatch(text.strip())) and not _DATE.fullmatch(text.strip())


def mask_text(text: str, known: list[str] = ()) -> str:
    """Mask e-mail addresses, phone-like numbers and the given known contact values in free text."""
    if not text:
        return text
    for value in sorted(known, key=len, reverse=True):
        if value and len(value) >= 2:
            text = text.replace(value, mask_value(value))
    text = _EMAIL.sub(lambda m: mask_value(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_value(m.group(0)) if _is_phone(m.group(0)) else m.group(0), text)


def mask_row(raw: dict) -> tuple[dict, list[str]]:
    """The row with contact fields masked, and the original contact values (to mask elsewhere)."""
    headers = contact_headers()
    masked, found = {}, []
    for key, value in raw.items():
        if value is None or value == "":
            masked[key] = value
            continue
        text = str(value)
        if str(key).strip().lower() in headers or _EMAIL.fullmatch(text.strip()) or _is_phone(text):
            masked[key] = mask_value(text)
            found.append(text)
        else:  # free text may still hold an e-mail or a phone number
            masked[key] = mask_text(value) if isinstance(value, str) else value
    return masked, found


def mask_raw_values(raw_values: str | None) -> tuple[str | None, list[str]]:
    """Mask a JSON object of raw values (as stored in raw.quarantine); text that is not JSON is
    masked by look."""
    if not raw_values:
        return raw_values, []
    try:
        raw = json.loads(raw_values)
    except (TypeError, ValueError):
        return mask_text(raw_values), []
    if not isinstance(raw, dict):
        return mask_text(raw_values), []
    masked, found = mask_row(raw)
    return json.dumps(masked, ensure_ascii=False), found
