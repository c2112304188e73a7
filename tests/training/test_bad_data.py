"""Bad rows and files in whole runs: bad JSON lines (invalid JSON, bytes that are not UTF-8, a line that is no
object) are skipped and counted in `skipped_samples`, map-style and streamed; corrupt images in an image folder
or inside a Parquet file are skipped and counted; past `max_bad_rows_in_a_row` or `max_bad_rows` the run stops
with an error naming the section, the file and line or the dataset row, the column, the value and the fix."""

import json
import math
from pathlib import Path

import datasets
import pytest

from mmfm.data import BatchStream, load_rows
from mmfm.modalities import get_modality
from mmfm.training.config import parse_command_line

from ._runs import (
    causal_text_config,
    causal_text_start,
    demo_texts,
    image_run,
    metrics,
    run_in_process,
    write_images,
)

DEFAULT = Path(__file__).resolve().parent / "mlm_demo.yaml"  # an MLM run (the embedded default binds)
BAD_LINES = [b'{"text": "half a line\n', b'{"text": "caf\xe9 au lait"}\n', b'["a list", "not an object"]\n']


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> Path:
    """A saved tiny causal LM with its tokenizer (the runs start from it)."""
    return causal_text_start(tmp_path_factory.mktemp("bad_data"))[1]


def write_texts(path: Path, texts: list[str], bad: dict[int, bytes]) -> Path:
    """JSON lines of `texts`, with the `bad` lines inserted before the given positions."""
    lines = [json.dumps({"text": t}).encode() + b"\n" for t in texts]
    for position in sorted(bad, reverse=True):
        lines.insert(position, bad[position])
    path.write_bytes(b"".join(lines))
    return path


def text_run(tmp_path: Path, start: Path, texts: Path, steps: int, *extra: str, **data) -> list[str]:
    """A tiny causal-LM run on `texts`, unpacked (a row is a text), batch 8."""
    config = causal_text_config(tmp_path / "clm.yaml", texts, start, steps, packing=False, **data)
    return ["--config", str(config), f"output_dir={tmp_path / 'run'}", "logging.report_to=[]",
            "training.per_device_batch_size=8", *extra]  # fmt: skip


@pytest.mark.parametrize("streaming", [False, True])
def test_bad_json_lines_are_skipped_and_counted(tmp_path, start, streaming):
    # 24 good texts, 3 bad lines: 3 steps of 8 rows are exactly one epoch, so each carried count is drawn once.
    texts = write_texts(tmp_path / "texts.jsonl", demo_texts(24), dict(zip([0, 9, 24], BAD_LINES)))
    result = run_in_process(*text_run(tmp_path, start, texts, 3, streaming=streaming))
    assert result["steps"] == 3 and all(math.isfinite(r["loss"]) for r in result["history"])
    assert metrics(tmp_path / "run")["skipped_samples"] == 3


@pytest.mark.parametrize("streaming", [False, True])
def test_too_many_bad_lines_in_a_row_stop_naming_the_file_line_and_field(tmp_path, start, streaming):
    texts = write_texts(tmp_path / "texts.jsonl", demo_texts(24), {10: b"oops\n" * 4})
    run = text_run(tmp_path, start, texts, 3, "tasks.clm.data.max_bad_rows_in_a_row=3", streaming=streaming)
    with pytest.raises(
        ValueError,
        match=r"`tasks\.clm\.data`: 4 bad lines in a row were skipped, more than `tasks\.clm\.data\."
        r"max_bad_rows_in_a_row` = 3\. The first: .*texts\.jsonl:11, value 'oops\\n': invalid JSON .*The last: "
        r".*texts\.jsonl:14.*raise `tasks\.clm\.data\.max_bad_rows_in_a_row`.*`tasks\.clm\.data\.on_bad_sample=raise`",
    ):
        run_in_process(*run)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("streaming", [False, True])
def test_too_many_bad_lines_in_all_stop_the_run(tmp_path, start, streaming):
    texts = write_texts(tmp_path / "texts.jsonl", demo_texts(24), dict(zip([0, 9, 24], BAD_LINES)))
    run = text_run(tmp_path, start, texts, 3, "tasks.clm.data.max_bad_rows=2", streaming=streaming)
    with pytest.raises(
        ValueError, match=r"3 bad lines were skipped, more than `tasks\.clm\.data\.max_bad_rows` = 2"
    ):
        run_in_process(*run)


def test_a_bad_line_stops_at_once_with_on_bad_sample_raise(tmp_path, start):
    texts = write_texts(tmp_path / "texts.jsonl", demo_texts(24), {5: BAD_LINES[1]})
    with pytest.raises(ValueError, match=r"bad line .*texts\.jsonl:6, .*not UTF-8.*on_bad_sample=skip"):
        run_in_process(*text_run(tmp_path, start, texts, 3, on_bad_sample="raise"))


# ---------------------------------------------------------------------------------------------- images


def image_parquet(path: Path, images: list[Path], corrupt: set[int]) -> Path:
    """A Parquet file with an `image` column (`datasets.Image`, bytes inside), the `corrupt` rows junk bytes."""
    cells = [
        {"bytes": b"no image here" if i in corrupt else p.read_bytes(), "path": None}
        for i, p in enumerate(images)
    ]
    rows = datasets.Dataset.from_dict({"image": cells}).cast_column("image", datasets.Image())
    rows.to_parquet(str(path))
    return path


@pytest.mark.parametrize("kind", ["folder", "parquet"])
def test_a_corrupt_image_among_good_ones_is_skipped_and_counted(tmp_path, kind):
    written = write_images(tmp_path / "images", per_class=12)  # 24 rows: one epoch of 6 steps of 4
    if kind == "folder":
        written[7].write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
        source = tmp_path / "images"
    else:
        source = image_parquet(tmp_path / "images.parquet", written, corrupt={7})
    result = run_in_process(*image_run(tmp_path, {"source": str(source)}, "training.max_steps=6"))
    assert metrics(tmp_path / "run")["skipped_samples"] == 1
    assert sum(round(r["samples_per_s"] * r["step_time_s"]) for r in result["history"]) == 23


def test_data_whose_every_image_is_refused_stops_naming_column_row_and_value(tmp_path):
    written = write_images(tmp_path / "images", per_class=8)
    source = image_parquet(tmp_path / "images.parquet", written, corrupt=set(range(16)))
    run = image_run(tmp_path, {"source": str(source), "max_bad_rows_in_a_row": 10}, "training.max_steps=3")
    with pytest.raises(
        ValueError,
        match=r"`tasks\.mae\.data`: 12 bad rows in a row were skipped, more than `tasks\.mae\.data\."
        r"max_bad_rows_in_a_row` = 10\. The first: dataset row \d+, column 'image', value \{'bytes': b'no image "
        r"here', 'path': None\}: cannot read image of 13 bytes: UnidentifiedImageError",
    ):
        run_in_process(*run)


def test_max_bad_rows_caps_the_bad_rows_of_an_epoch(tmp_path):
    written = write_images(tmp_path / "images", per_class=12)
    source = image_parquet(tmp_path / "images.parquet", written, corrupt={3, 11, 19})
    run = image_run(tmp_path, {"source": str(source), "max_bad_rows": 2}, "training.max_steps=6")
    with pytest.raises(
        ValueError,
        match=r"3 bad rows in epoch 0 on this process were skipped, more than `tasks\.mae\.data\.max_bad_rows` = 2",
    ):
        run_in_process(*run)
    # Within the cap the run trains, and a second epoch may skip as many again.
    (tmp_path / "within").mkdir()
    run = image_run(tmp_path / "within", {"source": str(source), "max_bad_rows": 3}, "training.max_steps=12")
    assert run_in_process(*run)["skipped_samples"] == 6


# ---------------------------------------------------------------------------------------------- streams, config


def keep_rows(rows: list[dict]) -> list[dict]:
    return rows


def test_a_streamed_json_source_with_bad_lines_resumes_exactly(tmp_path):
    bad = {i * 7: BAD_LINES[i % 3] for i in range(6)}
    texts = write_texts(tmp_path / "texts.jsonl", [f"text {i}" for i in range(60)], bad)
    rows = load_rows(str(texts), get_modality("text"), "tasks.t.data", streaming=True)

    def stream() -> BatchStream:
        return BatchStream(rows, keep_rows, 4, 0, 1, 0, 0, 16, "tasks.t.data")

    def take(s: BatchStream, count: int) -> list:
        return [[(r["text"], r["num_skipped"]) for r in next(s)] for _ in range(count)]

    original = stream()
    first = take(original, 17)  # into the second epoch
    assert sum(n for batch in first[:15] for _, n in batch) == 6  # one epoch carries every bad line once
    state, expected = original.state_dict(), take(original, 5)
    resumed = stream()
    resumed.load_state_dict(state)
    assert take(resumed, 5) == expected


@pytest.mark.parametrize("field", ["max_bad_rows_in_a_row", "max_bad_rows"])
@pytest.mark.parametrize("value", [0, -3])
def test_bad_row_caps_must_be_positive(field, value):
    with pytest.raises(ValueError, match=rf"`tasks\.mlm\.data\.{field}` must be > 0, got {value}"):
        parse_command_line([f"tasks.mlm.data.{field}={value}"], default=DEFAULT)
    config = parse_command_line([f"tasks.mlm.data.{field}=7"], default=DEFAULT)
    assert getattr(config.tasks["mlm"].data, field) == 7
