"""The MAE recipe on images as users store them: a folder of PNG files in class subfolders trains and is
probed at the end of the run (kNN and linear probe in metrics.json), JSON lines of image paths relative to
the JSON file train from any working directory, and a missing or corrupt image file is skipped and counted,
or stops the run naming the file."""

import json
import math

import pytest
from transformers import AutoModel

from ._runs import image_run, metrics, run_in_process, write_images, write_jsonl

PATCHES_PER_IMAGE = (16 // 4) ** 2


def _check_trained(result: dict, steps: int) -> None:
    assert result["steps"] == steps and [r["step"] for r in result["history"]] == list(range(1, steps + 1))
    assert all(math.isfinite(r["loss"]) for r in result["history"])
    for record in result["history"]:  # every row of a step is one 16x16 image of 16 patches
        assert record["patches_per_s"] == pytest.approx(PATCHES_PER_IMAGE * record["samples_per_s"])


def test_mae_trains_on_an_image_folder_and_is_probed_on_image_folders(tmp_path):
    images = tmp_path / "images"
    write_images(images / "train", per_class=12)  # kNN's 20 neighbours need 20 training images
    write_images(images / "test", per_class=3, seed=1)
    one_split = tmp_path / "one_split"
    write_images(one_split, per_class=13, seed=2)  # 20 of the 26 to fit, 6 to score
    evaluation = [{"source": str(images)}, {"source": str(one_split), "probes": ["knn"]}]
    result = run_in_process(*image_run(tmp_path, {"source": str(images)}, "training.max_steps=3",
                                       evaluation=evaluation))  # fmt: skip
    assert result == metrics(tmp_path / "run")
    _check_trained(result, 3)
    assert result["skipped_samples"] == 0
    assert type(AutoModel.from_pretrained(result["exported"]["mae"])).__name__ == "MMFMVisionModel"
    reports = result["evaluation"]["mae"]
    assert sorted(reports) == sorted([f"{images}/label", f"{one_split}/label"])
    assert sorted(reports[f"{images}/label"]) == ["knn", "linear_probe"]
    assert sorted(reports[f"{one_split}/label"]) == ["knn"]
    for report in reports.values():
        for probe in report.values():
            assert 0.0 <= probe["accuracy"] <= 1.0


def test_mae_trains_on_image_paths_relative_to_a_json_lines_file(tmp_path, monkeypatch):
    written = write_images(tmp_path / "data" / "pics", per_class=12)
    source = write_jsonl(tmp_path / "data" / "rows.jsonl",
                         [{"image": str(p.relative_to(tmp_path / "data"))} for p in written])  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_in_process(*image_run(tmp_path, {"source": str(source)}, "training.max_steps=6"))
    _check_trained(result, 6)
    # 6 steps x 4 rows: one epoch, every image decoded and trained on.
    assert result["skipped_samples"] == 0
    assert sum(round(r["samples_per_s"] * r["step_time_s"]) for r in result["history"]) == 24


def _rows_with_bad_files(tmp_path, bad: tuple[str, ...] = ("missing.png", "corrupt.png")):
    """24 JSON-lines rows of image paths: 22 readable files and the `bad` ones (a file that does not exist,
    a file that is no image)."""
    written = write_images(tmp_path / "data" / "pics", per_class=11)
    (tmp_path / "data" / "pics" / "corrupt.png").write_bytes(b"not an image at all")
    paths = [str(p.relative_to(tmp_path / "data")) for p in written]
    for i, name in enumerate(bad):
        paths.insert(5 + 9 * i, f"pics/{name}")
    return write_jsonl(tmp_path / "data" / "rows.jsonl", [{"image": p} for p in paths[:24]])


def test_missing_and_corrupt_image_files_are_skipped_and_counted(tmp_path):
    source = _rows_with_bad_files(tmp_path)
    result = run_in_process(*image_run(tmp_path, {"source": str(source)}, "training.max_steps=6"))
    assert result["skipped_samples"] == 2  # one epoch: each bad row came up once
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped_samples"] == 2
    assert sum(round(r["samples_per_s"] * r["step_time_s"]) for r in result["history"]) == 22
    assert all(math.isfinite(r["loss"]) for r in result["history"])


@pytest.mark.parametrize("bad", ["missing.png", "corrupt.png"])
def test_a_bad_image_file_stops_the_run_naming_it_when_asked(tmp_path, bad):
    source = _rows_with_bad_files(tmp_path, (bad,))
    run = image_run(tmp_path, {"source": str(source), "on_bad_sample": "raise"}, "training.max_steps=6")
    with pytest.raises(ValueError) as raised:
        run_in_process(*run)
    assert str(tmp_path / "data" / "pics" / bad) in str(raised.value)
    assert "tasks.mae.data.on_bad_sample=skip" in str(raised.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_data_whose_every_row_is_refused_stops_the_run_instead_of_spinning(tmp_path):
    (tmp_path / "data").mkdir()
    source = write_jsonl(
        tmp_path / "data" / "rows.jsonl", [{"image": f"pics/gone_{i}.png"} for i in range(8)]
    )
    with pytest.raises(ValueError) as raised:
        run_in_process(*image_run(tmp_path, {"source": str(source)}, "training.max_steps=3"))
    message = str(raised.value)
    assert "`tasks.mae.data`: 104 bad rows in a row" in message and "max_bad_rows_in_a_row` = 100" in message
    assert "column 'image', value '" in message and "gone_" in message
    assert "tasks.mae.data.on_bad_sample=raise" in message
    assert not (tmp_path / "run" / "metrics.json").exists()
