"""Every export file loads with Hugging Face `datasets` as docs/api.md says, offline: the TRL
preference layout (JSON lines and Parquet), OpenAI's DPO layout, records, predictions, tasks."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Before datasets reads its configuration: local files only, never the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import pytest  # noqa: E402

from marlin.review.models import Decision  # noqa: E402
from tests.exports.test_exports import decided, run_export  # noqa: E402, F401

pytestmark = pytest.mark.slow


def load(path: Path, cache: Path) -> datasets.Dataset:
    builder = "parquet" if path.suffix == ".parquet" else "json"
    loaded = datasets.load_dataset(
        builder, data_files=str(path), split="train", cache_dir=str(cache)
    )
    assert isinstance(loaded, datasets.Dataset)
    return loaded


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_export_file_loads_with_datasets(decided, erin, tmp_path) -> None:  # noqa: F811
    loaded: dict[str, datasets.Dataset] = {}
    for kind in ("preferences", "records", "predictions", "tasks"):
        directory = Path(run_export(erin, decided, kind).directory)
        for path in sorted(directory.glob("*")):
            if path.name != "manifest.json":
                loaded[path.name] = load(path, tmp_path / "cache")
                if path.suffix == ".jsonl":
                    assert loaded[path.name].to_list() == lines(path), path.name
    assert {"preferences.jsonl", "preferences.parquet", "preferences.openai.jsonl"} <= set(loaded)
    assert {"judgments.jsonl", "reviews.jsonl", "decisions.jsonl", "tasks.jsonl"} <= set(loaded)
    assert any(name.startswith("predictions-") for name in loaded)

    decided_pairs = Decision.objects.filter(comparison__project=decided).exclude(overall=0)
    trl = loaded["preferences.parquet"]
    assert trl.num_rows == decided_pairs.count() == 4
    # TRL's conversational preference columns: lists of {role, content} messages.
    for row in trl:
        for column in ("prompt", "chosen", "rejected"):
            assert row[column] and all(set(m) == {"role", "content"} for m in row[column])
    assert trl.to_list() == loaded["preferences.jsonl"].to_list()

    openai = loaded["preferences.openai.jsonl"]
    assert openai.column_names == ["input", "preferred_output", "non_preferred_output"]
    for mine, row in zip(openai, trl, strict=True):
        assert mine["input"]["messages"] == row["prompt"]
        assert mine["input"]["messages"][0]["role"] == "system"
        assert mine["preferred_output"] == [row["chosen"][-1]]
        assert mine["non_preferred_output"] == [row["rejected"][-1]]
        assert mine["preferred_output"][0]["role"] == "assistant"
        assert mine["preferred_output"][0]["content"] != mine["non_preferred_output"][0]["content"]
