"""The files of the demo repository `ledgerlite`, commit by commit, and candidate solutions.

ledgerlite is a small, realistic Python library written for Marlin's demo and tests: money
parsing, a double-entry ledger, CSV import. Its tests run with plain pytest and no dependencies.
"""

from __future__ import annotations

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "ledgerlite"
version = "0.3.0"
description = "A tiny double-entry ledger with exact money arithmetic."
requires-python = ">=3.9"
"""

README = """# ledgerlite

A tiny double-entry ledger with exact money arithmetic (integer cents, no floats).

```python
from ledgerlite import Ledger, parse_amount
ledger = Ledger()
ledger.post("2024-01-05", "cash", "sales", parse_amount("1,250.00"), memo="invoice 17")
ledger.balance("cash")  # 125000
```

Run the tests with `python -m pytest`.
"""

INIT = '''"""ledgerlite: a tiny double-entry ledger with exact money arithmetic."""

from ledgerlite.ledger import Entry, Ledger, LedgerError
from ledgerlite.money import format_cents, parse_amount

__all__ = ["Entry", "Ledger", "LedgerError", "format_cents", "parse_amount"]
'''

MONEY = '''"""Money as integer cents: parsing user input and formatting for display."""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"^(-)?(\\d{1,3}(?:,\\d{3})*|\\d+)(?:\\.(\\d{1,2}))?$")


def parse_amount(text: str) -> int:
    """Parse '1,234.5' or '-12.05' into cents. Raises ValueError on anything else."""
    cleaned = text.strip().replace("$", "")
    match = _AMOUNT.match(cleaned)
    if not match:
        raise ValueError(f"not an amount: {text!r}")
    sign, whole, fraction = match.groups()
    cents = int(whole.replace(",", "")) * 100 + int((fraction or "0").ljust(2, "0"))
    return -cents if sign else cents


def format_cents(cents: int, *, symbol: str = "$") -> str:
    """Format cents as '$1,234.50' (negative amounts as '-$1,234.50')."""
    sign = "-" if cents < 0 else ""
    whole, fraction = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{fraction:02d}"
'''

LEDGER = '''"""A double-entry ledger: every posting debits one account and credits another."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date


class LedgerError(ValueError):
    """A posting that would make the ledger inconsistent."""


@dataclass(frozen=True)
class Entry:
    day: date
    debit: str
    credit: str
    cents: int
    memo: str = ""


@dataclass
class Ledger:
    entries: list[Entry] = field(default_factory=list)

    def post(self, day: str | date, debit: str, credit: str, cents: int, memo: str = "") -> Entry:
        if cents <= 0:
            raise LedgerError("amounts must be positive; swap debit and credit instead")
        if debit == credit:
            raise LedgerError("debit and credit must be different accounts")
        when = date.fromisoformat(day) if isinstance(day, str) else day
        entry = Entry(when, debit, credit, cents, memo)
        self.entries.append(entry)
        return entry

    def balance(self, account: str) -> int:
        """Debits minus credits for the account, in cents."""
        total = 0
        for entry in self.entries:
            if entry.debit == account:
                total += entry.cents
            if entry.credit == account:
                total -= entry.cents
        return total

    def balances(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for entry in self.entries:
            totals[entry.debit] += entry.cents
            totals[entry.credit] -= entry.cents
        return dict(totals)
'''

CSVIO = '''"""Import postings from CSV files exported by banks and spreadsheets."""

from __future__ import annotations

import csv
from pathlib import Path

from ledgerlite.ledger import Ledger
from ledgerlite.money import parse_amount


def load_csv(path: str | Path, ledger: Ledger | None = None) -> Ledger:
    """Read rows of date,debit,credit,amount[,memo] into a ledger.

    Amount cells may hold simple arithmetic such as '100+25.5' (spreadsheets export them).
    """
    ledger = ledger or Ledger()
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            amount = row["amount"].strip()
            if any(op in amount for op in "+-*/"):
                cents = int(round(eval(amount) * 100))
            else:
                cents = parse_amount(amount)
            ledger.post(row["date"], row["debit"], row["credit"], cents, row.get("memo", ""))
    return ledger
'''

TEST_MONEY = (
    """import pytest

from ledgerlite.money import format_cents, parse_amount


@pytest.mark.parametrize(
    ("text", "cents"),
"""
    '    [("0", 0), ("12", 1200), ("12.5", 1250), ("12.05", 1205), ("1,234.56", 123456), '
    '("-3.10", -310), ("$7", 700)],\n'
    """)
def test_parse_amount(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text", ["", "abc", "1.234", "1,23", "--1"])
def test_parse_amount_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_amount(text)


def test_format_cents():
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(-5) == "-$0.05"
"""
)

TEST_LEDGER = """import pytest

from ledgerlite import Ledger, LedgerError


def test_balance_is_debits_minus_credits():
    ledger = Ledger()
    ledger.post("2024-01-05", "cash", "sales", 1000)
    ledger.post("2024-01-06", "rent", "cash", 400)
    assert ledger.balance("cash") == 600
    assert ledger.balance("sales") == -1000
    assert sum(ledger.balances().values()) == 0


def test_rejects_non_positive_amounts():
    with pytest.raises(LedgerError):
        Ledger().post("2024-01-05", "cash", "sales", 0)


def test_rejects_same_account():
    with pytest.raises(LedgerError):
        Ledger().post("2024-01-05", "cash", "cash", 10)
"""

TEST_CSVIO = (
    """from ledgerlite.csvio import load_csv


def test_load_csv(tmp_path):
    path = tmp_path / "bank.csv"
"""
    '    path.write_text("date,debit,credit,amount,memo\\n'
    '2024-02-01,cash,sales,\\"1,000.00\\",inv 1\\n2024-02-02,fees,cash,2.50,\\n")\n'
    """    ledger = load_csv(path)
    assert ledger.balance("cash") == 100000 - 250
    assert ledger.entries[0].memo == "inv 1"
"""
)

# The history: (message, {path: content}) applied in order.
COMMITS: list[tuple[str, dict[str, str]]] = [
    (
        "Money parsing and formatting in integer cents",
        {
            "pyproject.toml": PYPROJECT,
            "ledgerlite/__init__.py": INIT.replace(
                "from ledgerlite.ledger import Entry, Ledger, LedgerError\n", ""
            ).replace('"Entry", "Ledger", "LedgerError", ', ""),
            "ledgerlite/money.py": MONEY,
            "tests/test_money.py": TEST_MONEY,
        },
    ),
    (
        "Add the double-entry ledger",
        {
            "ledgerlite/__init__.py": INIT,
            "ledgerlite/ledger.py": LEDGER,
            "tests/test_ledger.py": TEST_LEDGER,
        },
    ),
    ("Import postings from CSV", {"ledgerlite/csvio.py": CSVIO, "tests/test_csvio.py": TEST_CSVIO}),
    ("Write a README", {"README.md": README}),
]

# --- Tasks of the demo and two candidate solutions for each (a good one and a flawed one). ---

PAREN_TEST = (
    """import pytest

from ledgerlite.money import parse_amount


"""
    '@pytest.mark.parametrize(("text", "cents"), '
    '[("(12.50)", -1250), ("(1,000)", -100000), ("(3)", -300)])\n'
    """def test_parse_amount_accepts_accounting_negatives(text, cents):
    assert parse_amount(text) == cents


def test_parse_amount_rejects_unbalanced_parentheses():
    with pytest.raises(ValueError):
        parse_amount("(12.50")
"""
)

MONEY_PAREN_GOOD = MONEY.replace(
    """    cleaned = text.strip().replace("$", "")
    match = _AMOUNT.match(cleaned)""",
    """    cleaned = text.strip().replace("$", "")
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    if negative:
        # Accounting notation: (12.50) means -12.50. A sign inside the parentheses is an error.
        cleaned = cleaned[1:-1].strip()
        if cleaned.startswith("-"):
            raise ValueError(f"not an amount: {text!r}")
    match = _AMOUNT.match(cleaned)""",
).replace(
    "    return -cents if sign else cents",
    "    return -cents if (sign or negative) else cents",
)

# Flawed: strips parentheses anywhere, so "(12.50" is accepted and "12.50)" too.
MONEY_PAREN_BUGGY = MONEY.replace(
    """    cleaned = text.strip().replace("$", "")
    match = _AMOUNT.match(cleaned)""",
    """    cleaned = text.strip().replace("$", "")
    if "(" in cleaned:
        cleaned = "-" + cleaned.replace("(", "").replace(")", "")
    match = _AMOUNT.match(cleaned)""",
)

CSVIO_SAFE = (
    CSVIO.replace(
        """            amount = row["amount"].strip()
            if any(op in amount for op in "+-*/"):
                cents = int(round(eval(amount) * 100))
            else:
                cents = parse_amount(amount)""",
        """            cents = _amount_cents(row["amount"])""",
    )
    .replace(
        """def load_csv(""",
        '''def _amount_cents(cell: str) -> int:
    """Sum of '+'-separated amounts ('100+25.5'); no other arithmetic, and no eval."""
    parts = [part for part in cell.strip().split("+")]
    if any(not part.strip() for part in parts):
        raise ValueError(f"not an amount: {cell!r}")
    return sum(parse_amount(part) for part in parts)


def load_csv(''',
    )
    .replace(
        "    Amount cells may hold simple arithmetic such as '100+25.5' "
        "(spreadsheets export them).",
        "    Amount cells may hold sums such as '100+25.5' (spreadsheets export them).",
    )
)

CSVIO_SAFE_TEST = (
    TEST_CSVIO + """

def test_sums_are_supported_without_eval(tmp_path):
    path = tmp_path / "bank.csv"
    path.write_text("date,debit,credit,amount\\n2024-02-01,cash,sales,100+25.5\\n")
    assert load_csv(path).balance("cash") == 12550


def test_code_in_amount_cells_is_rejected(tmp_path):
    import pytest

    path = tmp_path / "evil.csv"
"""
    '    path.write_text("date,debit,credit,amount\\n'
    "2024-02-01,cash,sales,__import__('os').getcwd() and 1\\n\")\n"
    """    with pytest.raises(ValueError):
        load_csv(path)
"""
)

# Flawed: swaps eval for a "restricted" eval that still evaluates expressions.
CSVIO_RESTRICTED_EVAL = CSVIO.replace(
    "cents = int(round(eval(amount) * 100))",
    'cents = int(round(eval(amount, {"__builtins__": {}}) * 100))',
)

BALANCE_AT_GOOD = LEDGER.replace(
    """    def balances(self) -> dict[str, int]:""",
    '''    def balance_at(self, account: str, day: str | date) -> int:
        """The balance of `account` at the end of `day` (postings on that day included)."""
        until = date.fromisoformat(day) if isinstance(day, str) else day
        return sum(
            (entry.cents if entry.debit == account else -entry.cents)
            for entry in self.entries
            if entry.day <= until and account in (entry.debit, entry.credit)
        )

    def balances(self) -> dict[str, int]:''',
)

BALANCE_AT_TEST = """from ledgerlite import Ledger


def test_balance_at_includes_the_day_itself():
    ledger = Ledger()
    ledger.post("2024-01-05", "cash", "sales", 1000)
    ledger.post("2024-01-10", "rent", "cash", 400)
    assert ledger.balance_at("cash", "2024-01-04") == 0
    assert ledger.balance_at("cash", "2024-01-05") == 1000
    assert ledger.balance_at("cash", "2024-01-10") == 600
"""

# Flawed: excludes postings made on the day itself.
BALANCE_AT_OFF_BY_ONE = BALANCE_AT_GOOD.replace("if entry.day <= until", "if entry.day < until")

TASKS: list[dict] = [
    {
        "key": "paren-negatives",
        "title": "Accept accounting-style negative amounts like (12.50)",
        "kind": "bug_fix",
        "prompt": (
            "Bank exports write negative amounts in accounting notation: "
            "`(12.50)` means -12.50.\n\n"
            '`parse_amount("(12.50)")` currently raises `ValueError`. Make `parse_amount` accept '
            "parenthesised amounts as negative values (with or without a `$` and thousands "
            "separators), and keep rejecting malformed input such as an unbalanced `(12.50`.\n\n"
            "Add tests for the new behaviour."
        ),
        "hidden_test_path": "tests/test_negative_parentheses.py",
        "hidden_test": PAREN_TEST,
        "fail_to_pass": [
            "tests/test_negative_parentheses.py::test_parse_amount_accepts_accounting_negatives[(12.50)--1250]",
            "tests/test_negative_parentheses.py::test_parse_amount_accepts_accounting_negatives[(1,000)--100000]",
            "tests/test_negative_parentheses.py::test_parse_amount_accepts_accounting_negatives[(3)--300]",
        ],
        "pass_to_pass": [
            "tests/test_negative_parentheses.py::test_parse_amount_rejects_unbalanced_parentheses",
            "tests/test_money.py::test_format_cents",
        ],
        "candidates": {
            "good": {
                "ledgerlite/money.py": MONEY_PAREN_GOOD,
                "tests/test_money_parentheses.py": PAREN_TEST,
            },
            "flawed": {"ledgerlite/money.py": MONEY_PAREN_BUGGY},
        },
    },
    {
        "key": "no-eval",
        "title": "Stop evaluating CSV amount cells with eval()",
        "kind": "security_fix",
        "prompt": (
            "`ledgerlite.csvio.load_csv` passes amount cells that contain an operator to "
            "`eval()`. A crafted CSV file can run arbitrary code when it is imported.\n\n"
            "Remove the use of `eval`. Spreadsheets do export sums such as `100+25.5`, so keep "
            "supporting `+`-separated sums of amounts; anything else must be rejected with a "
            "`ValueError` that names the bad cell."
        ),
        "candidates": {
            "good": {"ledgerlite/csvio.py": CSVIO_SAFE, "tests/test_csvio.py": CSVIO_SAFE_TEST},
            "flawed": {"ledgerlite/csvio.py": CSVIO_RESTRICTED_EVAL},
        },
    },
    {
        "key": "balance-at",
        "title": "Add Ledger.balance_at(account, day)",
        "kind": "feature",
        "prompt": (
            "Reports need the balance of an account as it stood at the end of a given day.\n\n"
            "Add `Ledger.balance_at(account, day)` where `day` is a `date` or an ISO string. "
            "Postings made on that day count. Document it and test it."
        ),
        "candidates": {
            "good": {
                "ledgerlite/ledger.py": BALANCE_AT_GOOD,
                "tests/test_balance_at.py": BALANCE_AT_TEST,
            },
            "flawed": {"ledgerlite/ledger.py": BALANCE_AT_OFF_BY_ONE},
        },
    },
    {
        "key": "format-tests",
        "title": "Cover format_cents with edge-case tests",
        "kind": "test",
        "prompt": (
            "`format_cents` has a single test. Add tests for zero, one cent, large amounts with "
            "thousands separators, negative values and a custom currency symbol. Do not change "
            "the library code."
        ),
        "candidates": {},
    },
]
