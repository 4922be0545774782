"""Writing export files and their manifest. Plain Python (json, hashlib, pyarrow), no Django.

An export directory holds data files and `manifest.json`; the manifest lists every other file
with its size and SHA-256, so `verify_manifest(directory)` can tell later whether anything was
changed, removed or added.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from itertools import repeat
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST_NAME = "manifest.json"
HASH_CHUNK = 1 << 20
PARQUET_BATCH_ROWS = 5_000

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CHECK = pa.struct(
    [
        ("name", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("passed", pa.int32()),
        ("failed", pa.int32()),
        ("errors", pa.int32()),
        ("skipped", pa.int32()),
    ]
)
CRITERION = pa.struct([("criterion", pa.string()), ("preference", pa.int8())])

# The preference-pair layout: prompt/chosen/rejected are TRL's conversational preference columns;
# the rest is provenance. Fixed so an empty export and a full one have the same columns.
PREFERENCE_SCHEMA = pa.schema(
    [
        ("prompt", pa.list_(MESSAGE)),
        ("chosen", pa.list_(MESSAGE)),
        ("rejected", pa.list_(MESSAGE)),
        ("margin", pa.int8()),
        ("criteria", pa.list_(CRITERION)),
        ("rationale", pa.string()),
        ("rubric", pa.string()),
        ("rubric_version", pa.int32()),
        ("chosen_side", pa.string()),
        ("chosen_agent", pa.string()),
        ("chosen_agent_version", pa.string()),
        ("rejected_agent", pa.string()),
        ("rejected_agent_version", pa.string()),
        ("chosen_checks", pa.list_(CHECK)),
        ("rejected_checks", pa.list_(CHECK)),
        ("experts", pa.list_(pa.string())),
        ("expert_rationales", pa.list_(pa.string())),
        ("decided_by", pa.string()),
        ("decision_source", pa.string()),
        ("decided_at", pa.string()),
        ("comparison_id", pa.string()),
        ("task_id", pa.int64()),
        ("task_external_id", pa.string()),
        ("task_kind", pa.string()),
        ("repository", pa.string()),
        ("base_commit", pa.string()),
        ("turns", pa.int32()),
        ("turn", pa.int32()),
    ]
)

# The files a preferences export can hold; all unless the export asks for some. "jsonl" and
# "parquet" are the TRL layout above; "openai" is OpenAI's DPO fine-tuning layout (one JSON
# object a line: input.messages, preferred_output, non_preferred_output).
PREFERENCE_FORMATS = ("jsonl", "parquet", "openai")
PREFERENCE_FILES = {
    "jsonl": "preferences.jsonl",
    "parquet": "preferences.parquet",
    "openai": "preferences.openai.jsonl",
}


class ManifestError(ValueError):
    """A manifest that cannot be read; the message says what is wrong."""


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """One JSON object a line (UTF-8, no ASCII escaping so text stays readable); returns
    the count.
    """
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str))
            handle.write("\n")
            count += 1
    return count


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_parquet(
    path: Path,
    rows: Iterable[dict[str, Any]],
    schema: pa.Schema,
    *,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> int:
    """Rows (dicts with the schema's keys) to one Parquet file, a row group per batch; the count.

    Batching keeps memory bounded for large exports while giving row groups big enough to
    compress well.
    """
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in _batches(rows, batch_rows):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count


def write_jsonl_and_parquet(
    jsonl_path: Path, parquet_path: Path, rows: Iterable[dict[str, Any]], schema: pa.Schema
) -> int:
    """The same rows to a JSON-lines file and a Parquet file in one pass over `rows` (so the
    query behind them runs once); returns the count."""
    with open(jsonl_path, "w", encoding="utf-8") as handle:

        def echoed() -> Iterator[dict[str, Any]]:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=str))
                handle.write("\n")
                yield row

        return write_parquet(parquet_path, echoed(), schema)


def openai_preference(row: dict[str, Any]) -> dict[str, Any]:
    """A preference row in OpenAI's DPO fine-tuning layout. Its outputs are single assistant
    messages, so with conversations only the final one (the patch) is kept."""
    return {
        "input": {"messages": row["prompt"]},
        "preferred_output": [_final_assistant(row["chosen"])],
        "non_preferred_output": [_final_assistant(row["rejected"])],
    }


def _final_assistant(messages: list[dict[str, str]]) -> dict[str, str]:
    return {"role": "assistant", "content": messages[-1]["content"] if messages else ""}


# Columns of a preference batch (build.preference_batch) whose values are (messages, patch):
# the messages before the final assistant message, and its content (the patch) as UTF-8 bytes.
PAIR_COLUMNS = ("chosen", "rejected")

Digests = dict[str, tuple[int, str]]  # file name -> (bytes, SHA-256) of what was written


def write_preferences(
    directory: Path,
    batches: Iterable[dict[str, list[Any]]],
    formats: Iterable[str],
    schema: pa.Schema,
    digests: Digests | None = None,
    *,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> int:
    """Preference batches (column name -> one value per row, PAIR_COLUMNS as (messages, patch))
    in every asked-for format (PREFERENCE_FILES) in one pass, so the query behind them runs
    once; the count. Memory holds one batch and one Parquet row group.

    The JSON lines are byte for byte json.dumps(row, ensure_ascii=False) and
    json.dumps(openai_preference(row), ensure_ascii=False); they are joined from each value's
    JSON, encoded once per distinct object per batch, and the patches' bytes escaped without
    becoming str. The Parquet row groups hold `batch_rows` rows, built column by column. Writing
    the files, hashing the JSON lines (into ``digests``) and Parquet's encoding and compression
    run in one background thread, beside the next batch's building (they release the GIL)."""
    formats = list(formats)
    digests = digests if digests is not None else {}
    count = 0
    with ExitStack() as stack:
        outputs = {
            name: (
                stack.enter_context(open(directory / PREFERENCE_FILES[name], "wb")),
                hashlib.sha256(),
            )
            for name in ("jsonl", "openai")
            if name in formats
        }
        parquet = (
            stack.enter_context(
                pq.ParquetWriter(
                    directory / PREFERENCE_FILES["parquet"], schema, compression="zstd"
                )
            )
            if "parquet" in formats
            else None
        )
        # Entered last, so it is drained before the files close.
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        pending: deque[Future[None]] = deque()

        def later(work: Callable[..., None], *args: Any) -> None:
            pending.append(pool.submit(work, *args))
            while len(pending) > 4:  # about two batches queued at most: memory stays bounded
                pending.popleft().result()

        held: list[pa.RecordBatch] = []  # rows not yet in a row group
        waiting = 0
        for columns in batches:
            rows = len(columns["prompt"])
            count += rows
            factors = {
                name: _factorize(values)
                for name, values in columns.items()
                if name not in PAIR_COLUMNS
            }
            if outputs:
                lines = _json_lines(columns, factors)
                for name, (handle, digest) in outputs.items():
                    later(_write_hashed, handle, digest, lines[name])
            if parquet is not None:
                held.append(_record_batch(columns, factors, schema))
                waiting += rows
                while waiting >= batch_rows:
                    table = pa.Table.from_batches(held, schema=schema)
                    later(parquet.write_table, table.slice(0, batch_rows).combine_chunks())
                    held = table.slice(batch_rows).to_batches()
                    waiting -= batch_rows
        if parquet is not None:
            if waiting:
                later(parquet.write_table, pa.Table.from_batches(held, schema).combine_chunks())
            elif count == 0:
                later(parquet.write_table, schema.empty_table())
        while pending:
            pending.popleft().result()
        for name, (handle, digest) in outputs.items():
            digests[PREFERENCE_FILES[name]] = (handle.tell(), digest.hexdigest())
    return count


def _write_hashed(handle: BinaryIO, digest: Any, data: bytes) -> None:
    handle.write(data)
    digest.update(data)


# What json.dumps(value, ensure_ascii=False, default=str) uses, built once instead of per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
_ASSISTANT = '{"role": "assistant", "content": "'
# Control characters JSON escapes as \u00XX, \b or \f; a patch holding one takes the slow path.
_RARE_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13))


def json_string_bytes(text: bytes) -> bytes:
    """The inside of json.dumps(text.decode(), ensure_ascii=False) (no quotes), as UTF-8 bytes,
    without decoding: patches are mostly ASCII lines, and five bytes.replace passes are about
    three times faster than the str encoder, and the result needs no encoding to be written."""
    if len(text.translate(None, _RARE_CONTROLS)) != len(text):
        return encode_basestring(text.decode())[1:-1].encode()
    return (
        text.replace(b"\\", b"\\\\")
        .replace(b'"', b'\\"')
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"\t", b"\\t")
    )


def _factorize(values: list[Any]) -> tuple[list[Any], list[int]]:
    """The distinct values (strings, integers and None by value; anything else, such as the
    lists a batch shares, by identity) and each value's position among them: a batch's columns
    repeat a few values many times, which are then encoded and converted once."""
    try:
        distinct = list(dict.fromkeys(values))
    except TypeError:  # lists
        distinct = []
    keys: list[Any] = values
    if not distinct or not {type(v) for v in distinct} <= {str, int, type(None)}:
        # By identity (by value only where equal means the same JSON: True == 1, 1.0 == 1).
        keys = list(map(id, values))
        distinct = list(dict(zip(keys, values, strict=True)).values())
        index = {id(value): i for i, value in enumerate(distinct)}
    else:
        index = {value: i for i, value in enumerate(distinct)}
    return distinct, list(map(index.__getitem__, keys))


def _json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    return _ENCODER.encode(value)


def _json_lines(
    columns: dict[str, list[Any]], factors: dict[str, tuple[list[Any], list[int]]]
) -> dict[str, bytes]:
    """A batch's TRL lines ("jsonl") and OpenAI lines ("openai"), each distinct value encoded
    once and each row's patches escaped once for both."""
    names = list(columns)
    if names[:3] != ["prompt", *PAIR_COLUMNS]:
        raise ValueError(f"a preference batch starts with prompt, chosen, rejected, not {names}")
    rest = names[3:]
    # A str.format template for the rest of the line (the keys are identifiers: no braces).
    tail = '"}}]' + "".join(f", {_ENCODER.encode(name)}: {{}}" for name in rest) + "}}\n"

    def encoded(name: str) -> list[str]:
        distinct, codes = factors[name]
        return list(map([_json(value) for value in distinct].__getitem__, codes))

    distinct, codes = factors["prompt"]
    prompts = list(map([_json(value).encode() for value in distinct].__getitem__, codes))
    tails = [tail.format(*row).encode() for row in zip(*map(encoded, rest), strict=True)]
    chosen_leads, chosen = _pair_json(columns["chosen"])
    rejected_leads, rejected = _pair_json(columns["rejected"])
    # Each line is its pieces in order: zip them row by row and join, without a Python loop.
    trl = zip(
        repeat(b'{"prompt": '),
        prompts,
        repeat(b', "chosen": '),
        chosen_leads,
        chosen,
        repeat(b'"}], "rejected": '),
        rejected_leads,
        rejected,
        tails,
    )
    openai = zip(
        repeat(b'{"input": {"messages": '),
        prompts,
        repeat(b'}, "preferred_output": [' + _ASSISTANT.encode()),
        chosen,
        repeat(b'"}], "non_preferred_output": [' + _ASSISTANT.encode()),
        rejected,
        repeat(b'"}]}\n'),
    )
    return {
        "jsonl": b"".join(itertools.chain.from_iterable(trl)),
        "openai": b"".join(itertools.chain.from_iterable(openai)),
    }


def _pair_json(values: list[tuple[list[dict[str, str]], bytes]]) -> tuple[list[bytes], list[bytes]]:
    """For (messages, patch) values: the JSON of the message list up to the final message's
    content (the messages' JSON once per list object), and the patches' JSON string bodies."""
    leads: dict[int, bytes] = {}
    for messages, _ in values:
        if id(messages) not in leads:
            start = _ENCODER.encode(messages)[:-1] + ", " if messages else "["
            leads[id(messages)] = (start + _ASSISTANT).encode()
    return (
        [leads[id(messages)] for messages, _ in values],
        [json_string_bytes(patch) for _, patch in values],
    )


def _record_batch(
    columns: dict[str, list[Any]],
    factors: dict[str, tuple[list[Any], list[int]]],
    schema: pa.Schema,
) -> pa.RecordBatch:
    """A batch's columns as Arrow arrays, built from flat lists rather than from a dict per row
    (what pa.Table.from_pylist walks); a column of few distinct values is converted once per
    value and spread with take()."""
    arrays = []
    for field in schema:
        if field.name in PAIR_COLUMNS:
            arrays.append(_pair_array(columns[field.name], field.type))
            continue
        distinct, codes = factors[field.name]
        if len(distinct) * 2 <= len(codes):
            arrays.append(_array(distinct, field.type).take(pa.array(codes, type=pa.int32())))
        else:
            arrays.append(_array(columns[field.name], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(values: list[Any], kind: Any) -> pa.Array:
    return _list_array(values, kind) if pa.types.is_list(kind) else pa.array(values, type=kind)


def _pair_array(values: list[tuple[list[dict[str, str]], bytes]], kind: Any) -> pa.Array:
    if any(messages for messages, _ in values):
        return _list_array(
            [
                [*messages, {"role": "assistant", "content": patch.decode()}]
                for messages, patch in values
            ],
            kind,
        )
    # One assistant message per row, its content the patch's bytes, checked as UTF-8 by the cast.
    contents = pa.array([patch for _, patch in values], type=pa.binary()).cast(pa.string())
    roles = pa.array(["assistant"] * len(values), type=pa.string())
    messages = pa.StructArray.from_arrays([roles, contents], fields=list(kind.value_type))
    offsets = pa.array(range(len(values) + 1), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, messages, type=kind)


def _list_array(values: list[Any], kind: Any) -> pa.Array:
    item = kind.value_type
    if any(value is None for value in values):
        return pa.array(values, type=kind)  # null lists: pyarrow's own conversion
    flat = [x for value in values for x in value]
    if pa.types.is_struct(item):
        if any(not isinstance(x, dict) for x in flat):
            return pa.array(values, type=kind)
        children = [pa.array([x.get(f.name) for x in flat], type=f.type) for f in item]
        items = pa.StructArray.from_arrays(children, fields=list(item))
    else:
        items = pa.array(flat, type=item)
    offsets = pa.array(list(itertools.accumulate(map(len, values), initial=0)), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, items, type=kind)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(
    directory: Path, manifest: dict[str, Any], digests: Digests | None = None
) -> dict[str, Any]:
    """Add `files` (name, bytes, sha256 of every other file in `directory`) and write it.
    ``digests`` holds the SHA-256 of files hashed as they were written; a file whose size
    differs from its entry there (or without one) is read and hashed."""
    digests = digests or {}
    files = []
    for p in _data_files(directory):
        size = p.stat().st_size
        known = digests.get(p.name)
        sha = known[1] if known is not None and known[0] == size else sha256_file(p)
        files.append({"name": p.name, "bytes": size, "sha256": sha})
    full = {**manifest, "files": files}
    tmp = directory / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST_NAME)
    return full


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist; is this an export directory?") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ManifestError(f"{path} has no 'files' list")
    return manifest


def verify_manifest(directory: Path) -> list[str]:
    """Problems found comparing the files with the manifest; an empty list means it verifies."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    problems: list[str] = []
    listed: set[str] = set()
    for entry in manifest["files"]:
        name = str(entry.get("name", ""))
        listed.add(name)
        path = directory / name
        if not name or Path(name).name != name:
            problems.append(f"manifest names a file outside the export: {name!r}")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry.get("bytes"):
            problems.append(
                f"{name}: size {path.stat().st_size} bytes, manifest says {entry.get('bytes')}"
            )
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 differs from the manifest (the file was changed)")
    for extra in _data_files(directory):
        if extra.name not in listed:
            problems.append(f"{extra.name}: not listed in the manifest")
    return problems
