"""The demo's finished work: small ledgerlite tasks and the three kinds of solution an agent
gives (good, partial, flawed), as file contents. Plain data; marlin/demo/history.py imports
them as predictions and has simulated experts judge them through the review pipeline.

A task adds ``code`` to ``path`` before ``anchor`` (at the end when the anchor is empty). The
good solution also adds ``test``; the partial one adds the code without tests; the flawed one
applies ``bug`` (old, new) to the code. ``flaw`` says in words what the bug does, for the
experts' rationales.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from marlin.demo.sample_repo_files import COMMITS


@dataclass(frozen=True)
class HistoryTask:
    key: str
    title: str
    kind: str
    prompt: str
    path: str
    anchor: str
    code: str
    bug: tuple[str, str]
    flaw: str
    test_path: str = ""
    test: str = ""


def head_files() -> dict[str, str]:
    """The demo repository's files at its last commit."""
    files: dict[str, str] = {}
    for _message, changes in COMMITS:
        files.update(changes)
    return files


LEDGER_ANCHOR = "    def balances(self) -> dict[str, int]:"


def _t(*specs: tuple[str, str, str, str, str, tuple[str, str], str, str]) -> list[HistoryTask]:
    tasks = []
    for key, title, kind, path, code, bug, flaw, test in specs:
        anchor = LEDGER_ANCHOR if path == "ledgerlite/ledger.py" else ""
        tasks.append(
            HistoryTask(
                key=key,
                title=title,
                kind=kind,
                prompt=f"{title}.\n\nKeep the change small, follow the code's style, add tests.",
                path=path,
                anchor=anchor,
                code=code,
                bug=bug,
                flaw=flaw,
                test_path=f"tests/test_{key.replace('-', '_')}.py" if test else "",
                test=test,
            )
        )
    return tasks


HISTORY_TASKS: list[HistoryTask] = _t(
    (
        "accounts",
        "Add Ledger.accounts() returning every account name, sorted",
        "feature",
        "ledgerlite/ledger.py",
        '''    def accounts(self) -> list[str]:
        """Every account that appears in a posting, sorted by name."""
        return sorted({e.debit for e in self.entries} | {e.credit for e in self.entries})

''',
        ("return sorted(", "return list("),
        "returns the names unsorted",
        "from ledgerlite import Ledger\n\n\ndef test_accounts_sorted():\n    ledger = Ledger()\n"
        '    ledger.post("2024-01-01", "sales", "cash", 5)\n'
        '    assert ledger.accounts() == ["cash", "sales"]\n',
    ),
    (
        "entries-for",
        "Add Ledger.entries_for(account) listing the postings that touch an account",
        "feature",
        "ledgerlite/ledger.py",
        '''    def entries_for(self, account: str) -> list[Entry]:
        """Postings that debit or credit the account, in the order they were made."""
        return [e for e in self.entries if account in (e.debit, e.credit)]

''',
        ("account in (e.debit, e.credit)", "e.debit == account"),
        "only lists the postings that debit the account",
        "from ledgerlite import Ledger\n\n\ndef test_entries_for_both_sides():\n"
        '    ledger = Ledger()\n    ledger.post("2024-01-01", "cash", "sales", 5)\n'
        '    ledger.post("2024-01-02", "rent", "cash", 2)\n'
        '    assert len(ledger.entries_for("cash")) == 2\n',
    ),
    (
        "total-debits",
        "Add Ledger.total_debits(account)",
        "feature",
        "ledgerlite/ledger.py",
        '''    def total_debits(self, account: str) -> int:
        """The sum of the postings that debit the account, in cents."""
        return sum(e.cents for e in self.entries if e.debit == account)

''',
        ("if e.debit == account", "if account in (e.debit, e.credit)"),
        "adds the credits too",
        "from ledgerlite import Ledger\n\n\ndef test_total_debits():\n    ledger = Ledger()\n"
        '    ledger.post("2024-01-01", "cash", "sales", 5)\n'
        '    ledger.post("2024-01-02", "rent", "cash", 2)\n'
        '    assert ledger.total_debits("cash") == 5\n',
    ),
    (
        "net-change",
        "Add Ledger.net_change(account, start, end) over an inclusive date range",
        "feature",
        "ledgerlite/ledger.py",
        '''    def net_change(self, account: str, start: date, end: date) -> int:
        """Debits minus credits of the account between start and end, both days included."""
        return sum(
            (e.cents if e.debit == account else -e.cents)
            for e in self.entries
            if start <= e.day <= end and account in (e.debit, e.credit)
        )

''',
        ("start <= e.day <= end", "start <= e.day < end"),
        "leaves out the postings made on the last day",
        "from datetime import date\n\nfrom ledgerlite import Ledger\n\n\ndef test_net_change():\n"
        '    ledger = Ledger()\n    ledger.post("2024-01-31", "cash", "sales", 5)\n'
        '    assert ledger.net_change("cash", date(2024, 1, 1), date(2024, 1, 31)) == 5\n',
    ),
    (
        "is-balanced",
        "Add Ledger.is_balanced() for a trial balance",
        "feature",
        "ledgerlite/ledger.py",
        '''    def is_balanced(self) -> bool:
        """Whether debits equal credits over every account (a trial balance)."""
        return sum(self.balances().values()) == 0

''',
        ("== 0", ">= 0"),
        "also reports a ledger with more debits than credits as balanced",
        "from ledgerlite import Ledger\n\n\ndef test_is_balanced():\n"
        "    assert Ledger().is_balanced()\n",
    ),
    (
        "largest-entry",
        "Add Ledger.largest_entry() returning the biggest posting or None",
        "feature",
        "ledgerlite/ledger.py",
        '''    def largest_entry(self) -> Entry | None:
        """The posting with the largest amount (the first one on a tie), or None when empty."""
        return max(self.entries, key=lambda e: e.cents, default=None)

''',
        ("max(self.entries", "min(self.entries"),
        "returns the smallest posting",
        "from ledgerlite import Ledger\n\n\ndef test_largest_entry():\n    ledger = Ledger()\n"
        "    assert ledger.largest_entry() is None\n"
        '    ledger.post("2024-01-01", "cash", "sales", 5)\n'
        '    ledger.post("2024-01-02", "cash", "sales", 9)\n'
        "    assert ledger.largest_entry().cents == 9\n",
    ),
    (
        "search-memo",
        "Add Ledger.search(text) over memos, ignoring case",
        "feature",
        "ledgerlite/ledger.py",
        '''    def search(self, text: str) -> list[Entry]:
        """Postings whose memo contains the text, ignoring case."""
        needle = text.casefold()
        return [e for e in self.entries if needle in e.memo.casefold()]

''',
        ("needle in e.memo.casefold()", "text in e.memo"),
        "matches case-sensitively",
        "from ledgerlite import Ledger\n\n\ndef test_search_ignores_case():\n"
        "    ledger = Ledger()\n"
        '    ledger.post("2024-01-01", "cash", "sales", 5, memo="Invoice 7")\n'
        '    assert len(ledger.search("invoice")) == 1\n',
    ),
    (
        "void-entry",
        "Add Ledger.void(entry) that posts the reversing entry",
        "feature",
        "ledgerlite/ledger.py",
        '''    def void(self, entry: Entry) -> Entry:
        """Cancel a posting by posting its reverse (the history stays complete)."""
        return self.post(entry.day, entry.credit, entry.debit, entry.cents, f"void: {entry.memo}")

''',
        ("entry.credit, entry.debit", "entry.debit, entry.credit"),
        "posts the same entry again instead of its reverse",
        "from ledgerlite import Ledger\n\n\ndef test_void_reverses():\n    ledger = Ledger()\n"
        '    entry = ledger.post("2024-01-01", "cash", "sales", 5)\n    ledger.void(entry)\n'
        '    assert ledger.balance("cash") == 0\n',
    ),
    (
        "len-ledger",
        "Make len(ledger) the number of postings",
        "feature",
        "ledgerlite/ledger.py",
        """    def __len__(self) -> int:
        return len(self.entries)

""",
        ("len(self.entries)", "len(self.balances())"),
        "counts accounts instead of postings",
        "from ledgerlite import Ledger\n\n\ndef test_len():\n    ledger = Ledger()\n"
        '    ledger.post("2024-01-01", "cash", "sales", 5)\n    assert len(ledger) == 1\n',
    ),
    (
        "balances-sorted",
        "Add Ledger.sorted_balances() for reports, ordered by account",
        "feature",
        "ledgerlite/ledger.py",
        '''    def sorted_balances(self) -> list[tuple[str, int]]:
        """(account, balance) pairs ordered by account name, for reports."""
        return sorted(self.balances().items())

''',
        ("sorted(self.balances().items())", "list(self.balances().items())"),
        "does not sort at all",
        "from ledgerlite import Ledger\n\n\ndef test_sorted_balances():\n    ledger = Ledger()\n"
        '    ledger.post("2024-01-01", "sales", "cash", 5)\n'
        '    assert [a for a, _ in ledger.sorted_balances()] == ["cash", "sales"]\n',
    ),
    (
        "copy-ledger",
        "Add Ledger.copy() returning an independent ledger",
        "feature",
        "ledgerlite/ledger.py",
        '''    def copy(self) -> Ledger:
        """A new ledger with the same postings; posting to one does not change the other."""
        return Ledger(list(self.entries))

''',
        ("Ledger(list(self.entries))", "Ledger(self.entries)"),
        "shares the postings list, so posting to the copy changes the original",
        "from ledgerlite import Ledger\n\n\ndef test_copy_is_independent():\n"
        "    ledger = Ledger()\n    other = ledger.copy()\n"
        '    other.post("2024-01-01", "cash", "sales", 5)\n    assert ledger.entries == []\n',
    ),
    (
        "post-max",
        "Reject postings above one billion dollars as likely typos",
        "bug_fix",
        "ledgerlite/ledger.py",
        '''    MAX_CENTS = 100_000_000_000

    def post_checked(self, day: str | date, debit: str, credit: str, cents: int) -> Entry:
        """post(), refusing amounts above MAX_CENTS (almost always a typo in an import)."""
        if cents > self.MAX_CENTS:
            raise LedgerError(f"{cents} cents is more than the ledger accepts")
        return self.post(day, debit, credit, cents)

''',
        ("if cents > self.MAX_CENTS", "if cents > self.MAX_CENTS * 100"),
        "checks against a limit a hundred times too high",
        "import pytest\n\nfrom ledgerlite import Ledger, LedgerError\n\n\ndef test_too_large():\n"
        "    with pytest.raises(LedgerError):\n"
        '        Ledger().post_checked("2024-01-01", "cash", "sales", 10**12)\n',
    ),
    (
        "to-decimal",
        "Add money.to_decimal(cents) returning an exact Decimal",
        "feature",
        "ledgerlite/money.py",
        '''

def to_decimal(cents: int) -> "Decimal":
    """Cents as an exact Decimal number of dollars (never a float)."""
    from decimal import Decimal

    return Decimal(cents).scaleb(-2)
''',
        ("Decimal(cents).scaleb(-2)", "Decimal(cents / 100)"),
        "goes through a float, so 0.29 becomes 0.28999999999999998",
        "from decimal import Decimal\n\nfrom ledgerlite.money import to_decimal\n\n\n"
        'def test_to_decimal_exact():\n    assert to_decimal(29) == Decimal("0.29")\n',
    ),
    (
        "split-cents",
        "Add money.split(cents, parts) that shares an amount without losing a cent",
        "feature",
        "ledgerlite/money.py",
        '''

def split(cents: int, parts: int) -> list[int]:
    """Share cents into `parts` amounts that differ by at most one cent and add up exactly."""
    base, extra = divmod(cents, parts)
    return [base + 1] * extra + [base] * (parts - extra)
''',
        ("[base + 1] * extra + [base] * (parts - extra)", "[base] * parts"),
        "drops the remainder, so 100 cents in three parts adds up to 99",
        "from ledgerlite.money import split\n\n\ndef test_split_adds_up():\n"
        "    assert sum(split(100, 3)) == 100\n",
    ),
    (
        "trailing-minus",
        "Accept amounts with a trailing minus sign like 12.50-",
        "bug_fix",
        "ledgerlite/money.py",
        '''

def parse_trailing_minus(text: str) -> int:
    """parse_amount, also accepting the trailing minus some bank exports use ('12.50-')."""
    cleaned = text.strip()
    if cleaned.endswith("-") and not cleaned.startswith("-"):
        return -parse_amount(cleaned[:-1])
    return parse_amount(cleaned)
''',
        (' and not cleaned.startswith("-")', ""),
        "accepts '-12.50-' and turns it positive",
        "from ledgerlite.money import parse_trailing_minus\n\n\ndef test_trailing_minus():\n"
        '    assert parse_trailing_minus("12.50-") == -1250\n',
    ),
    (
        "format-plus",
        "Let format_cents show a + sign on positive amounts when asked",
        "feature",
        "ledgerlite/money.py",
        '''

def format_signed(cents: int, *, symbol: str = "$") -> str:
    """format_cents with an explicit '+' on positive amounts (for change columns)."""
    text = format_cents(cents, symbol=symbol)
    return f"+{text}" if cents > 0 else text
''',
        ("if cents > 0", "if cents >= 0"),
        "puts a plus sign on zero",
        "from ledgerlite.money import format_signed\n\n\ndef test_format_signed():\n"
        '    assert format_signed(5) == "+$0.05"\n    assert format_signed(0) == "$0.00"\n',
    ),
    (
        "space-thousands",
        "Accept a space as the thousands separator (1 234.56)",
        "bug_fix",
        "ledgerlite/money.py",
        '''

def parse_spaced(text: str) -> int:
    """parse_amount, also accepting single spaces between groups of three digits."""
    import re

    if re.search(r"\\d \\d{3}(?!\\d)", text):
        text = text.replace(" ", ",")
    return parse_amount(text)
''',
        ('text.replace(" ", ",")', 'text.replace(" ", "")'),
        "removes every space, so '12 5' silently becomes 125",
        "from ledgerlite.money import parse_spaced\n\n\ndef test_spaced():\n"
        '    assert parse_spaced("1 234.56") == 123456\n',
    ),
    (
        "round-nickel",
        "Add money.round_to(cents, step) for cash rounding",
        "feature",
        "ledgerlite/money.py",
        '''

def round_to(cents: int, step: int = 5) -> int:
    """Round to the nearest multiple of `step` cents, halves away from zero (cash rounding)."""
    sign = -1 if cents < 0 else 1
    return sign * ((abs(cents) + step // 2) // step) * step
''',
        ("(abs(cents) + step // 2) // step", "abs(cents) // step"),
        "always rounds down",
        "from ledgerlite.money import round_to\n\n\ndef test_round_to():\n"
        "    assert round_to(103) == 105\n    assert round_to(-103) == -105\n",
    ),
    (
        "csv-blank-lines",
        "Skip blank rows in CSV imports instead of failing",
        "bug_fix",
        "ledgerlite/csvio.py",
        '''

def rows_with_data(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows of a CSV file that have any non-blank cell (exports end with empty rows)."""
    return [row for row in rows if any((cell or "").strip() for cell in row.values())]
''',
        ('any((cell or "").strip() for cell in row.values())', 'row.get("date")'),
        "keeps rows whose date is filled but every other cell is blank",
        "from ledgerlite.csvio import rows_with_data\n\n\ndef test_blank_rows():\n"
        '    assert rows_with_data([{"date": "", "amount": " "}]) == []\n',
    ),
    (
        "csv-semicolon",
        "Read CSV files that use semicolons as the delimiter",
        "feature",
        "ledgerlite/csvio.py",
        '''

def sniff_delimiter(first_line: str) -> str:
    """',' or ';', whichever the header line uses (European exports use semicolons)."""
    return ";" if first_line.count(";") > first_line.count(",") else ","
''',
        ('first_line.count(";") > first_line.count(",")', '";" in first_line'),
        "picks ';' whenever one appears, even inside a quoted memo",
        "from ledgerlite.csvio import sniff_delimiter\n\n\ndef test_sniff():\n"
        '    assert sniff_delimiter("date;debit;credit;amount") == ";"\n',
    ),
    (
        "csv-write",
        "Add csvio.write_csv(ledger, path) that round-trips with load_csv",
        "feature",
        "ledgerlite/csvio.py",
        '''

def write_csv(ledger: Ledger, path: str | Path) -> None:
    """Write the postings in the format load_csv reads (a header row, then one row each)."""
    from ledgerlite.money import format_cents

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "debit", "credit", "amount", "memo"])
        for e in ledger.entries:
            amount = format_cents(e.cents, symbol="")
            writer.writerow([e.day.isoformat(), e.debit, e.credit, amount, e.memo])
''',
        ('        writer.writerow(["date", "debit", "credit", "amount", "memo"])\n', ""),
        "writes no header row, so load_csv cannot read the file back",
        "from ledgerlite import Ledger\nfrom ledgerlite.csvio import load_csv, write_csv\n\n\n"
        "def test_round_trip(tmp_path):\n    ledger = Ledger()\n"
        '    ledger.post("2024-01-01", "cash", "sales", 5)\n'
        '    write_csv(ledger, tmp_path / "x.csv")\n'
        '    assert load_csv(tmp_path / "x.csv").balance("cash") == 5\n',
    ),
    (
        "csv-row-errors",
        "Name the row number when a CSV row cannot be imported",
        "bug_fix",
        "ledgerlite/csvio.py",
        '''

def row_error(number: int, row: dict[str, str], problem: Exception) -> ValueError:
    """An error naming the 1-based data row (the header is row 0) and what was wrong."""
    return ValueError(f"row {number}: {problem} (amount {row.get('amount')!r})")
''',
        ("row {number}", "row {number - 1}"),
        "numbers the rows one too low",
        "from ledgerlite.csvio import row_error\n\n\ndef test_row_error():\n"
        '    assert "row 3" in str(row_error(3, {}, ValueError("bad")))\n',
    ),
    (
        "csv-bom",
        "Ignore a UTF-8 byte-order mark at the start of CSV files",
        "bug_fix",
        "ledgerlite/csvio.py",
        '''

def strip_bom(header: str) -> str:
    """The header line without the byte-order mark Excel writes at the start of UTF-8 files."""
    return header[1:] if header.startswith("\\ufeff") else header
''',
        ("header[1:]", "header[3:]"),
        "cuts three characters, taking the first letters of 'date' with the mark",
        "from ledgerlite.csvio import strip_bom\n\n\ndef test_strip_bom():\n"
        '    assert strip_bom("\\ufeffdate") == "date"\n',
    ),
    (
        "entry-str",
        "Give Entry a readable one-line description for logs",
        "feature",
        "ledgerlite/ledger.py",
        '''    @staticmethod
    def describe(entry: Entry) -> str:
        """'2024-01-05 cash <- sales 10.00 (memo)', for logs and the command line."""
        amount = f"{entry.cents // 100}.{entry.cents % 100:02d}"
        return f"{entry.day} {entry.debit} <- {entry.credit} {amount} ({entry.memo})"

''',
        ("{entry.cents % 100:02d}", "{entry.cents % 100}"),
        "prints 10.5 for 10.05",
        "from ledgerlite import Ledger\n\n\ndef test_describe():\n    ledger = Ledger()\n"
        '    e = ledger.post("2024-01-05", "cash", "sales", 1005)\n'
        '    assert "10.05" in Ledger.describe(e)\n',
    ),
    (
        "accounts-prefix",
        "Add Ledger.balance_of_group(prefix) summing accounts like expenses:*",
        "feature",
        "ledgerlite/ledger.py",
        '''    def balance_of_group(self, prefix: str) -> int:
        """The summed balance of every account named `prefix` or starting with `prefix:`."""
        return sum(
            cents
            for account, cents in self.balances().items()
            if account == prefix or account.startswith(prefix + ":")
        )

''',
        ('account == prefix or account.startswith(prefix + ":")', "account.startswith(prefix)"),
        "also counts 'expensesX' as part of 'expenses'",
        "from ledgerlite import Ledger\n\n\ndef test_group():\n    ledger = Ledger()\n"
        '    ledger.post("2024-01-05", "expenses:rent", "cash", 5)\n'
        '    ledger.post("2024-01-05", "expensesx", "cash", 7)\n'
        '    assert ledger.balance_of_group("expenses") == 5\n',
    ),
    (
        "readme-csv",
        "Document the CSV import in the README",
        "docs",
        "README.md",
        """
## Importing CSV files

`ledgerlite.csvio.load_csv(path)` reads rows of `date,debit,credit,amount[,memo]`. Amounts use
the same syntax as `parse_amount`; each row becomes one posting.
""",
        ("each row becomes one posting", "rows with errors are skipped"),
        "says bad rows are skipped, when load_csv raises on them",
        "",
    ),
    (
        "readme-balance",
        "Explain the sign of balances in the README",
        "docs",
        "README.md",
        """
## Balances

`balance(account)` is debits minus credits: positive for assets such as cash, negative for
income accounts such as sales. Over every account the balances add up to zero.
""",
        ("add up to zero", "add up to the cash balance"),
        "claims the balances add up to the cash balance",
        "",
    ),
    (
        "readme-contrib",
        "Add a short contributing section to the README",
        "docs",
        "README.md",
        """
## Contributing

Run `python -m pytest` before sending a change; every change to money handling needs a test
with amounts in cents.
""",
        ("python -m pytest", "python setup.py test"),
        "tells contributors to run a command the project does not support",
        "",
    ),
    (
        "test-balances",
        "Test that balances() always sums to zero",
        "test",
        "tests/test_ledger.py",
        """

def test_balances_sum_to_zero_after_many_postings():
    ledger = Ledger()
    for n in range(1, 20):
        ledger.post("2024-01-05", f"a{n % 3}", f"b{n % 4}", n)
    assert sum(ledger.balances().values()) == 0
""",
        ("== 0", "!= 1"),
        "asserts something that passes for almost any ledger",
        "",
    ),
    (
        "test-post-errors",
        "Test the error messages of Ledger.post",
        "test",
        "tests/test_ledger.py",
        """

def test_post_names_the_problem():
    with pytest.raises(LedgerError, match="positive"):
        Ledger().post("2024-01-05", "cash", "sales", -1)
""",
        ('match="positive"', 'match=""'),
        "matches any message, so it checks nothing about the wording",
        "",
    ),
    (
        "test-format-negative",
        "Test format_cents on negative amounts above a thousand",
        "test",
        "tests/test_money.py",
        """

def test_format_cents_negative_thousands():
    assert format_cents(-123456) == "-$1,234.56"
""",
        ('"-$1,234.56"', "format_cents(-123456)"),
        "compares the function with itself",
        "",
    ),
    (
        "test-parse-spaces",
        "Test that parse_amount ignores surrounding whitespace",
        "test",
        "tests/test_money.py",
        """

def test_parse_amount_strips_whitespace():
    assert parse_amount("  12.50\\n") == 1250
""",
        ("== 1250", "is not None"),
        "only checks that something is returned",
        "",
    ),
    (
        "test-csv-memo",
        "Test CSV rows without a memo column",
        "test",
        "tests/test_csvio.py",
        """

def test_rows_without_memo(tmp_path):
    path = tmp_path / "bank.csv"
    path.write_text("date,debit,credit,amount\\n2024-02-01,cash,sales,1.00\\n")
    assert load_csv(path).entries[0].memo == ""
""",
        ('.memo == ""', ".memo is not None"),
        "would also pass if the memo were the string 'None'",
        "",
    ),
    (
        "init-exports",
        "Export load_csv from the package",
        "feature",
        "ledgerlite/__init__.py",
        """
from ledgerlite.csvio import load_csv  # noqa: E402

__all__ += ["load_csv"]
""",
        ('__all__ += ["load_csv"]', '__all__ = ["load_csv"]'),
        "replaces __all__, so the other names are no longer exported",
        "",
    ),
)


def solution(task: HistoryTask, variant: str, files: dict[str, str]) -> dict[str, str]:
    """The files a solution of this variant writes ("good", "partial" or "flawed")."""
    code = task.code
    if variant == "flawed":
        old, new = task.bug
        if old not in code:
            raise ValueError(f"history task {task.key}: the bug's text is not in its code")
        code = code.replace(old, new, 1)
    original = files[task.path]
    if task.anchor:
        if task.anchor not in original:
            raise ValueError(f"history task {task.key}: anchor not found in {task.path}")
        changed = original.replace(task.anchor, code + task.anchor, 1)
    else:
        changed = original + code
    written = {task.path: changed}
    if variant == "good" and task.test:
        written[task.test_path] = task.test
    return written


def unified_patch(files: dict[str, str], written: dict[str, str]) -> str:
    """A git-style unified diff from the repository's files to the written ones."""
    parts = []
    for path, content in sorted(written.items()):
        before = files.get(path)
        old_lines = [] if before is None else before.splitlines(keepends=True)
        new_lines = content.splitlines(keepends=True)
        header = f"diff --git a/{path} b/{path}\n"
        if before is None:
            header += "new file mode 100644\n"
        body = difflib.unified_diff(
            old_lines,
            new_lines,
            "/dev/null" if before is None else f"a/{path}",
            f"b/{path}",
            n=3,
        )
        parts.append(
            header + "".join(line if line.endswith("\n") else line + "\n" for line in body)
        )
    return "".join(parts)
