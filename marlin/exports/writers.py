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
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

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


def write_preferences(
    directory: Path, rows: Iterable[dict[str, Any]], formats: Iterable[str], schema: pa.Schema
) -> int:
    """The rows in every asked-for format (PREFERENCE_FILES) in one pass over ``rows``, so the
    query behind them runs once and only one Parquet batch is held at a time; the count."""
    formats = list(formats)
    with ExitStack() as stack:
        handles = {
            name: stack.enter_context(
                open(directory / PREFERENCE_FILES[name], "w", encoding="utf-8")
            )
            for name in ("jsonl", "openai")
            if name in formats
        }
        trl, openai = handles.get("jsonl"), handles.get("openai")

        def echoed() -> Iterator[dict[str, Any]]:
            for row in rows:
                # Each row's patches are encoded once for both files: the TRL line is joined
                # from the prompt's and messages' JSON and the rest's, and the OpenAI line
                # (openai_preference's layout) reuses the same pieces; both are byte for byte
                # what json.dumps writes for the row and for openai_preference(row).
                prompt = _ENCODER.encode(row["prompt"])
                chosen, preferred = _messages_json(row["chosen"])
                rejected, non_preferred = _messages_json(row["rejected"])
                if trl is not None:
                    parts = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
                    trl.write(_object_json(row, parts))
                if openai is not None:
                    openai.write(
                        f'{{"input": {{"messages": {prompt}}}, "preferred_output": {preferred}, '
                        f'"non_preferred_output": {non_preferred}}}\n'
                    )
                yield row

        if "parquet" in formats:
            return write_parquet(directory / PREFERENCE_FILES["parquet"], echoed(), schema)
        return sum(1 for _ in echoed())


# What json.dumps(value, ensure_ascii=False, default=str) uses, built once instead of per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _messages_json(messages: list[dict[str, str]]) -> tuple[str, str]:
    """The JSON of a message list, and of openai_preference's one-message output list for it,
    encoding each message (and so each patch) once."""
    encoded = [_ENCODER.encode(m) for m in messages]
    final = _final_assistant(messages)
    if messages and list(messages[-1].items()) == list(final.items()):
        last = encoded[-1]
    else:
        last = _ENCODER.encode(final)
    return "[" + ", ".join(encoded) + "]", "[" + last + "]"


def _object_json(row: dict[str, Any], encoded: dict[str, str]) -> str:
    """One JSON line for ``row``, equal to json.dumps's, whose first keys' values are already
    encoded; the remaining keys are encoded in one call."""
    if list(itertools.islice(row, len(encoded))) != list(encoded):
        return _ENCODER.encode(row) + "\n"
    lead = ", ".join(f"{_ENCODER.encode(key)}: {value}" for key, value in encoded.items())
    rest = {key: value for key, value in row.items() if key not in encoded}
    if not rest:
        return "{" + lead + "}\n"
    return "{" + lead + ", " + _ENCODER.encode(rest)[1:] + "\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add `files` (name, bytes, sha256 of every other file in `directory`) and write it."""
    files = [
        {"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in _data_files(directory)
    ]
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
