"""How long importing a 10,000-line repository list takes: `do_import_repositories` (validate,
de-duplicate, bulk_create in batches, bulk tags, one audit event) against the naive loop a user
would otherwise write (validate, then one `Repository.objects.create` per line, each committed
on its own).

The list has about 5% malicious or malformed lines and about 3% duplicates spelled differently.
Every run starts from empty catalog tables in a freshly migrated database: SQLite in a temporary
data directory, and PostgreSQL when a server answers at postgres://postgres@127.0.0.1:5432/
(a throwaway database is created and dropped).

    .venv/bin/python benchmarks/catalog_import.py [--lines 10000] [--runs 5]
        [--backend sqlite|postgres|all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
MALICIOUS = [
    "--upload-pack=touch /tmp/x",
    "-oProxyCommand=touch /tmp/x",
    "ext::sh -c touch% /tmp/x",
    "fd::17",
    "file:///etc",
    "https://user:pw@github.com/x/y",
    "git@github.com:-evil/x",
    "http://github.com/plain/http",
    "not a url",
]
LANGUAGES = ["Python", "Go", "Rust", "TypeScript", "Java", "C++"]


def make_csv(lines: int) -> str:
    rows = ["url,language,stars,license,tags"]
    unique = 0
    for n in range(1, lines + 1):
        if n % 20 == 0:
            rows.append(f"{MALICIOUS[n % len(MALICIOUS)]},Go,1,MIT,")
        elif n % 37 == 0 and unique:
            k = (n * 7) % unique
            rows.append(f"git@github.com:Owner{k}/Repo{k}.git,Go,1,MIT,")
        else:
            lang = LANGUAGES[unique % len(LANGUAGES)]
            tags = ";".join(["web", "cli", "infra", "ml"][: 1 + unique % 3])
            rows.append(
                f"https://github.com/owner{unique}/repo{unique},{lang},"
                f"{unique * 13 % 90000},MIT,{tags}"
            )
            unique += 1
    return "\n".join(rows) + "\n"


def child(lines: int, runs: int) -> dict:
    """Runs inside a process whose environment already names the database."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from marlin.accounts.models import RoleGrant, User
    from marlin.catalog import validation
    from marlin.catalog.actions import do_import_repositories
    from marlin.catalog.importer import parse_repository_list
    from marlin.catalog.models import Repository, Tag

    # The list names one host, looked up once per import; DNS is not what this measures (and a
    # benchmark machine may have no resolver), so the host resolves from a table.
    validation.resolve_host = lambda host: ["140.82.112.3"]
    admin = User.objects.create_user("bench-admin", password=uuid.uuid4().hex)
    RoleGrant.objects.create(user=admin, role="admin")
    text = make_csv(lines)

    def reset() -> None:
        Repository.tags.through.objects.all().delete()
        Repository.objects.all().delete()
        Tag.objects.all().delete()
        # Audit events are append-only; the one event per bulk import stays, which is harmless.

    def bulk() -> int:
        return do_import_repositories(admin, text, filename="bench.csv").created

    def naive() -> int:
        # What one writes without the importer: the same validation, one INSERT per row,
        # each committed on its own (autocommit), tags through .add().
        report = parse_repository_list(text, filename_hint="bench.csv")
        created = 0
        for line in report.good:
            repo = Repository.objects.create(
                url=line.url,
                normalized_url=line.normalized,
                name=line.name,
                host=line.host,
                language=line.language,
                stars=line.stars,
                license=line.license,
                created_by=admin,
            )
            for name in line.tags:
                tag, _ = Tag.objects.get_or_create(name=name)
                repo.tags.add(tag)
            created += 1
        return created

    results: dict[str, list[float]] = {"bulk": [], "naive": []}
    created: dict[str, int] = {}
    for _ in range(runs):
        for name, fn in (("bulk", bulk), ("naive", naive)):
            reset()
            start = time.perf_counter()
            created[name] = fn()
            results[name].append(time.perf_counter() - start)
    parse_times = []
    for _ in range(runs):
        start = time.perf_counter()
        report = parse_repository_list(text, filename_hint="bench.csv")
        parse_times.append(time.perf_counter() - start)
    return {
        "vendor": connection.vendor,
        "times": results,
        "parse": parse_times,
        "created": created,
        "bad": len(report.bad),
        "duplicates": len(report.duplicates),
    }


def run_backend(backend: str, lines: int, runs: int) -> dict | None:
    with tempfile.TemporaryDirectory(prefix="marlin-bench-") as tmp:
        env = {**os.environ, "MARLIN_DATA_DIR": tmp, "DJANGO_SETTINGS_MODULE": "marlin.settings"}
        env.pop("MARLIN_DATABASE_URL", None)
        dbname = None
        if backend == "postgres":
            dbname = _create_pg_database()
            if dbname is None:
                return None
            env["MARLIN_DATABASE_URL"] = f"{PG_SERVER}/{dbname}"
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--lines", str(lines), "--runs", str(runs)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except subprocess.CalledProcessError as exc:
            sys.stderr.write(exc.stderr)
            raise
        finally:
            if dbname:
                _drop_pg_database(dbname)
    return json.loads(out.strip().splitlines()[-1])


def _create_pg_database() -> str | None:
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=2, autocommit=True) as conn:
            name = f"marlin_bench_{uuid.uuid4().hex[:8]}"
            conn.execute(f'CREATE DATABASE "{name}"')
            return name
    except Exception as exc:  # noqa: BLE001 - any failure just means "no PostgreSQL here"
        print(f"PostgreSQL not reachable ({exc.__class__.__name__}); skipping it")
        return None


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=2, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(result: dict, lines: int) -> None:
    bulk = statistics.median(result["times"]["bulk"])
    naive = statistics.median(result["times"]["naive"])
    parse = statistics.median(result["parse"])
    print(
        f"\n{result['vendor']}: {lines} lines, {result['created']['bulk']} created, "
        f"{result['bad']} bad, {result['duplicates']} duplicates; "
        f"{len(result['times']['bulk'])} runs, median"
    )
    print(f"  parse + validate only      {parse:8.3f} s  {lines / parse:10,.0f} lines/s")
    print(f"  do_import_repositories     {bulk:8.3f} s  {lines / bulk:10,.0f} lines/s")
    print(f"  naive create() per line    {naive:8.3f} s  {lines / naive:10,.0f} lines/s")
    print(f"  naive / bulk               {naive / bulk:8.1f}x")
    print(f"  all runs bulk  {[round(t, 3) for t in result['times']['bulk']]}")
    print(f"  all runs naive {[round(t, 3) for t in result['times']['naive']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.lines, args.runs)))
        return
    print(
        f"machine: nproc={os.cpu_count()} {platform.machine()} {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    for backend in backends:
        result = run_backend(backend, args.lines, args.runs)
        if result is not None:
            report(result, args.lines)


if __name__ == "__main__":
    main()
