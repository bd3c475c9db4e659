"""Derived columns of a mapping: a small, safe expression language (no Python ``eval``).

A mapping may compute a canonical column from the file's own columns::

    derived:
      amount: Quantity * UnitPrice
      status: refunded when InvoiceNo starts with C else paid

Grammar (keywords are case-insensitive)::

    expression := value [ "when" condition "else" expression ]     -- a chain of cases
    condition  := value test                                         -- one test per case
    test       := "starts with" TEXT | "ends with" TEXT | "contains" TEXT
                | "equals" TEXT | "is empty" | "is not empty"
                | ("<" | "<=" | ">" | ">=") arith
    value      := arith
    arith      := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := NUMBER | COLUMN | TEXT | "-" factor | "(" arith ")"

* ``COLUMN`` is a bare word (``Quantity``) or a bracketed name (``[Unit Price]``) of the file's
  header (matched like mapping headers: case, width and spaces are ignored).
* ``TEXT`` is a quoted string (``'C'``, ``"paid"``).  Two places take a *bare word as text*:
  the operand of ``starts with``/``ends with``/``contains``/``equals`` (``starts with C``), and
  the results of a ``when``/``else`` chain computing a text column (``refunded when ... else
  paid``); write ``[Name]`` there to mean a column.
* ``NUMBER`` is a plain decimal (``2``, ``0.5``): no exponent, no ``_``.  Column values used in
  arithmetic must be plain decimals in the mapping's declared ``decimal_separator`` (thousands
  grouped by three are accepted): ``1_000``, ``1e5``, ``inf`` are errors, never numbers.
  Arithmetic is exact (:class:`decimal.Decimal`): ``3 * 0.335`` is ``1.005``, never ``1.01``.
* A missing (empty) column value makes arithmetic fail with a reason; tests treat it as empty
  text.  The whole expression is checked when the mapping loads (:func:`compile_expression`),
  with an error naming the problem; column names are checked against each file's header.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

__all__ = ["ExpressionError", "EvalError", "Expression", "compile_expression", "parse_number"]


class ExpressionError(ValueError):
    """The expression text is not valid (raised when the mapping loads)."""


class EvalError(ValueError):
    """A row's values cannot be evaluated (e.g. a column value is not a number)."""


_NUMBER_DOT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_NUMBER_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")


def parse_number(text: str | None, decimal_separator: str = ".") -> Decimal | None:
    """A plain decimal in the declared format -> exact :class:`Decimal`, else None.

    ``12``, ``-3``, ``2.55``, ``1,234.50`` (``"."`` separator) or ``1.234,50`` (``","``).
    Refused: ``1_000``, ``1e5``, ``inf``, ``nan``, ``0x10``, currency symbols, empty text.
    """
    if text is None:
        return None
    s = text.strip()
    if decimal_separator == ",":
        if not _NUMBER_COMMA.fullmatch(s):
            return None
        s = s.replace(".", "").replace(",", ".")
    else:
        if not _NUMBER_DOT.fullmatch(s):
            return None
        s = s.replace(",", "")
    return Decimal(s)


# ----------------------------------------------------------------------------------------
# tokens

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?(?![\w.]))
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<bracket>\[[^\]]+\])
      | (?P<op><=|>=|[-+*/()<>])
      | (?P<word>[^\s\[\]'"()*/+<>=-][^\s\[\]'"()*/+<>=]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # number | string | column | word | op | kw
    text: str


_KEYWORDS = {"when", "else", "starts", "ends", "with", "contains", "equals", "is", "not", "empty"}


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"unexpected character {text[pos:].strip()[:1]!r} at position {pos + 1}")
        pos = m.end()
        if m["number"]:
            out.append(_Tok("number", m["number"]))
        elif m["string"]:
            out.append(_Tok("string", m["string"][1:-1]))
        elif m["bracket"]:
            name = m["bracket"][1:-1].strip()
            if not name:
                raise ExpressionError("empty column name []")
            out.append(_Tok("column", name))
        elif m["op"]:
            out.append(_Tok("op", m["op"]))
        else:
            word = m["word"]
            if re.fullmatch(r"[\d_.,]+(?:[eE][+-]?\d+)?|\d[\d_]*[eE]\d+", word):
                raise ExpressionError(f"{word!r} is not a plain decimal number (no exponent, no '_')")
            kind = "kw" if word.casefold() in _KEYWORDS else "word"
            out.append(_Tok(kind, word.casefold() if kind == "kw" else word))
    if not out:
        raise ExpressionError("empty expression")
    return out


# ----------------------------------------------------------------------------------------
# tree: small node classes, each evaluates against a row accessor

Row = Callable[[str], "str | None"]  # column name -> raw text (None = empty)


class _Node:
    numeric: bool = False

    def columns(self) -> set[str]:
        return set()

    def eval(self, row: Row, sep: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class _Num(_Node):
    value: Decimal
    numeric = True

    def eval(self, row: Row, sep: str) -> Decimal:
        return self.value


@dataclass
class _Text(_Node):
    value: str

    def eval(self, row: Row, sep: str) -> str:
        return self.value


@dataclass
class _Col(_Node):
    name: str

    def columns(self) -> set[str]:
        return {self.name}

    def eval(self, row: Row, sep: str) -> str | None:
        return row(self.name)

    def number(self, row: Row, sep: str) -> Decimal:
        raw = row(self.name)
        if raw is None:
            raise EvalError(f"{self.name} is empty")
        value = parse_number(raw, sep)
        if value is None:
            raise EvalError(f"{self.name}={raw!r} is not a number (plain decimal, separator {sep!r})")
        return value


def _number(node: _Node, row: Row, sep: str) -> Decimal:
    if isinstance(node, _Col):
        return node.number(row, sep)
    value = node.eval(row, sep)
    if not isinstance(value, Decimal):
        raise EvalError(f"{value!r} is not a number")
    return value


@dataclass
class _Arith(_Node):
    op: str
    left: _Node
    right: _Node
    numeric = True

    def columns(self) -> set[str]:
        return self.left.columns() | self.right.columns()

    def eval(self, row: Row, sep: str) -> Decimal:
        a, b = _number(self.left, row, sep), _number(self.right, row, sep)
        with localcontext() as ctx:
            ctx.prec = 40  # exact for any product of two 18-digit amounts
            if self.op == "+":
                return a + b
            if self.op == "-":
                return a - b
            if self.op == "*":
                return a * b
            if b == 0:
                raise EvalError("division by zero")
            return a / b


@dataclass
class _Neg(_Node):
    operand: _Node
    numeric = True

    def columns(self) -> set[str]:
        return self.operand.columns()

    def eval(self, row: Row, sep: str) -> Decimal:
        return -_number(self.operand, row, sep)


@dataclass
class _Test(_Node):
    subject: _Node
    op: str  # starts | ends | contains | equals | empty | not_empty | < <= > >=
    operand: _Node | None

    def columns(self) -> set[str]:
        return self.subject.columns() | (self.operand.columns() if self.operand else set())

    def eval(self, row: Row, sep: str) -> bool:
        if self.op in ("<", "<=", ">", ">="):
            a, b = _number(self.subject, row, sep), _number(self.operand, row, sep)  # type: ignore[arg-type]
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[self.op]
        value = self.subject.eval(row, sep)
        text = "" if value is None else (format(value, "f") if isinstance(value, Decimal) else str(value))
        if self.op == "empty":
            return text.strip() == ""
        if self.op == "not_empty":
            return text.strip() != ""
        want = str(self.operand.eval(row, sep))  # type: ignore[union-attr]
        text, want = text.strip().casefold(), want.casefold()
        if self.op == "starts":
            return text.startswith(want)
        if self.op == "ends":
            return text.endswith(want)
        if self.op == "contains":
            return want in text
        return text == want


@dataclass
class _Case(_Node):
    result: _Node
    test: _Test
    otherwise: _Node

    def columns(self) -> set[str]:
        return self.result.columns() | self.test.columns() | self.otherwise.columns()

    def eval(self, row: Row, sep: str) -> Any:
        return self.result.eval(row, sep) if self.test.eval(row, sep) else self.otherwise.eval(row, sep)


# ----------------------------------------------------------------------------------------
# parser


class _Parser:
    def __init__(self, tokens: list[_Tok], text_results: bool):
        self.toks = tokens
        self.i = 0
        self.text_results = text_results  # bare words as results of when/else are text

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise ExpressionError("unexpected end of expression")
        self.i += 1
        return tok

    def is_kw(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "kw" and tok.text == word

    def expect_kw(self, word: str) -> None:
        tok = self.take()
        if tok.kind != "kw" or tok.text != word:
            raise ExpressionError(f"expected {word!r}, got {tok.text!r}")

    def expression(self) -> _Node:
        value = self.result()
        if not self.is_kw("when"):
            return value
        self.take()
        test = self.condition()
        if not self.is_kw("else"):
            raise ExpressionError("a 'when' needs an 'else' (what the other rows get)")
        self.take()
        return _Case(value, test, self.expression())

    def result(self) -> _Node:
        # `refunded when ...`: a lone bare word before when/else/end is text in a text column
        tok, nxt = self.peek(), self.peek(1)
        lone = nxt is None or (nxt.kind == "kw" and nxt.text in ("when", "else"))
        if self.text_results and tok is not None and tok.kind == "word" and lone:
            self.take()
            return _Text(tok.text)
        return self.arith()

    def condition(self) -> _Test:
        subject = self.arith()
        tok = self.take()
        if tok.kind == "kw" and tok.text in ("starts", "ends"):
            self.expect_kw("with")
            return _Test(subject, tok.text, self.literal())
        if tok.kind == "kw" and tok.text in ("contains", "equals"):
            return _Test(subject, tok.text, self.literal())
        if tok.kind == "kw" and tok.text == "is":
            if self.is_kw("not"):
                self.take()
                self.expect_kw("empty")
                return _Test(subject, "not_empty", None)
            self.expect_kw("empty")
            return _Test(subject, "empty", None)
        if tok.kind == "op" and tok.text in ("<", "<=", ">", ">="):
            return _Test(subject, tok.text, self.arith())
        raise ExpressionError(
            f"expected a test (starts with, ends with, contains, equals, is empty, <, >) after the "
            f"value, got {tok.text!r}"
        )

    def literal(self) -> _Node:
        tok = self.take()
        if tok.kind in ("word", "string", "number"):
            return _Text(tok.text)
        if tok.kind == "column":
            return _Col(tok.text)
        raise ExpressionError(f"expected a text value after the test, got {tok.text!r}")

    def arith(self) -> _Node:
        node = self.term()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text in "+-":
            self.take()
            node = _Arith(tok.text, node, self.term())
        return node

    def term(self) -> _Node:
        node = self.factor()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text in "*/":
            self.take()
            node = _Arith(tok.text, node, self.factor())
        return node

    def factor(self) -> _Node:
        tok = self.take()
        if tok.kind == "number":
            return _Num(Decimal(tok.text))
        if tok.kind == "string":
            return _Text(tok.text)
        if tok.kind in ("word", "column"):
            return _Col(tok.text)
        if tok.kind == "op" and tok.text == "-":
            return _Neg(self.factor())
        if tok.kind == "op" and tok.text == "(":
            node = self.arith()
            close = self.take()
            if close.text != ")":
                raise ExpressionError(f"expected ')', got {close.text!r}")
            return node
        raise ExpressionError(f"unexpected {tok.text!r}")


@dataclass(frozen=True)
class Expression:
    """A compiled derived-column expression."""

    text: str
    tree: _Node
    numeric: bool  # the target column is a number (amount): every result is parsed as one

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self.tree.columns())

    def results(self) -> list[str]:
        """The literal text results of a when/else chain (to check against a vocabulary)."""
        out: list[str] = []
        node = self.tree
        while isinstance(node, _Case):
            if isinstance(node.result, _Text):
                out.append(node.result.value)
            node = node.otherwise
        if isinstance(node, _Text):
            out.append(node.value)
        return out

    def evaluate(self, row: Row, decimal_separator: str = ".") -> str | None:
        """The row's value as text (numbers as plain decimals); raises :class:`EvalError`."""
        value = self.tree.eval(row, decimal_separator)
        if self.numeric and not isinstance(value, Decimal):
            # a column as the result of a number column: its value must be a number
            if value is None:
                raise EvalError("the chosen column is empty")
            number = parse_number(value, decimal_separator)
            if number is None:
                raise EvalError(f"{value!r} is not a number (plain decimal, separator {decimal_separator!r})")
            value = number
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise EvalError("not a finite number")
            return format(value, "f")  # exact: 6 x 2.55 = 15.30, no rounding, no exponent
        return value


def compile_expression(text: Any, *, numeric: bool) -> Expression:
    """Parse ``text`` for a numeric (``numeric=True``, e.g. amount) or a text column.

    Raises :class:`ExpressionError` with what is wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expected an expression such as 'Quantity * UnitPrice'")
    parser = _Parser(_tokenize(text), text_results=not numeric)
    tree = parser.expression()
    if parser.peek() is not None:
        raise ExpressionError(f"unexpected {parser.peek().text!r} after a complete expression")  # type: ignore[union-attr]
    if numeric:
        # every result must be a number or a column (parsed as a number per row)
        node = tree
        results = []
        while isinstance(node, _Case):
            results.append(node.result)
            node = node.otherwise
        results.append(node)
        for r in results:
            if isinstance(r, _Text):
                raise ExpressionError(f"a number column cannot take the text {r.value!r}")
    return Expression(text=text.strip(), tree=tree, numeric=numeric)
