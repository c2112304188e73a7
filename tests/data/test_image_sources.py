"""Images as users store them, read by `mmfm.data`: a folder of image files with class subfolders (and
`train`/`test` subfolders as splits, as `datasets`' `imagefolder` reads them), and JSON lines whose `image`
column holds file paths relative to the JSON file. Files are opened by the vision row adapter when a batch
is built, so a missing or corrupt file is one bad row: skipped and counted, or an error naming it."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from datasets import ClassLabel, IterableDataset
from PIL import Image

from mmfm.data import RowCollator, first_row, load_labelled_splits, load_rows
from mmfm.modalities import get_modality
from mmfm.models import MMFMVisionConfig
from mmfm.processing import MMFMProcessor
from tests.training._runs import write_images

VISION = get_modality("vision")
WHERE = "tasks.t.data"


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep the Arrow caches `load_dataset` writes for local files inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


@pytest.fixture(scope="module")
def processor() -> MMFMProcessor:
    return MMFMProcessor.from_model_config(MMFMVisionConfig(image_size=16, patch_size=4))


def collate(processor, rows, on_bad_sample="skip") -> dict:
    return RowCollator(VISION, processor, {}, "tasks.t", on_bad_sample=on_bad_sample)([dict(r) for r in rows])


def pixels_of(processor, paths: list[Path]) -> torch.Tensor:
    """What the processor makes of the files, opened here with PIL."""
    images = [Image.open(path) for path in paths]
    return processor(vision=images)["vision"]["pixel_values"]


def path_of(cell) -> str:
    return cell["path"] if isinstance(cell, dict) else cell


# ---------------------------------------------------------------------------------------------- image folders


def test_a_folder_of_class_subfolders_is_training_data(tmp_path, processor):
    written = write_images(tmp_path / "images", per_class=12)
    rows = load_rows(str(tmp_path / "images"), VISION, WHERE)
    assert rows.column_names == ["image"] and len(rows) == 24
    assert sorted(path_of(row["image"]) for row in rows) == sorted(str(p) for p in written)
    batch = collate(processor, rows.select(range(6)))
    assert (batch["num_rows"], batch["num_skipped"]) == (6, 0)
    assert batch["inputs"]["pixel_values"].shape == (6, 3, 16, 16)
    files = [Path(path_of(row["image"])) for row in rows.select(range(6))]
    assert torch.equal(batch["inputs"]["pixel_values"], pixels_of(processor, files))


def test_a_folder_with_train_and_test_subfolders_gives_labelled_splits(tmp_path):
    train = write_images(tmp_path / "images" / "train", per_class=8)
    test = write_images(tmp_path / "images" / "test", per_class=3, seed=1)
    fitted, scored = load_labelled_splits(str(tmp_path / "images"), VISION, "tasks.t.evaluation[0]", "label")
    assert (len(fitted), len(scored)) == (16, 6)
    assert fitted.features["label"] == ClassLabel(names=["dark", "light"])
    for split, files in ((fitted, train), (scored, test)):
        by_path = {path_of(row["image"]): row["label"] for row in split}
        assert sorted(by_path) == sorted(str(p) for p in files)
        assert all(by_path[str(p)] == ["dark", "light"].index(p.parent.name) for p in files)
    # Training on such a folder reads its train split.
    rows = load_rows(str(tmp_path / "images"), VISION, WHERE)
    assert sorted(path_of(row["image"]) for row in rows) == sorted(str(p) for p in train)


def test_a_folder_of_one_split_is_divided_80_20_by_class(tmp_path):
    write_images(tmp_path / "images", per_class=20)
    fitted, scored = load_labelled_splits(str(tmp_path / "images"), VISION, "tasks.t.evaluation[0]", "label")
    assert (len(fitted), len(scored)) == (32, 8)
    assert sorted(scored["label"]) == [0] * 4 + [1] * 4  # stratified by the class label
    assert not {path_of(c) for c in fitted["image"]} & {path_of(c) for c in scored["image"]}
    again = load_labelled_splits(str(tmp_path / "images"), VISION, "tasks.t.evaluation[0]", "label")[1]
    assert [path_of(c) for c in again["image"]] == [path_of(c) for c in scored["image"]]  # seeded
    other = load_labelled_splits(str(tmp_path / "images"), VISION, "e", "label", seed=1)[1]
    assert [path_of(c) for c in other["image"]] != [path_of(c) for c in scored["image"]]


def test_a_folder_without_the_label_column_names_label_column(tmp_path):
    write_images(tmp_path / "images", per_class=5)
    with pytest.raises(ValueError, match=r"no label column 'species'.*`e\.label_column`"):
        load_labelled_splits(str(tmp_path / "images"), VISION, "e", "species")


def test_a_corrupt_file_in_an_image_folder_is_one_bad_row(tmp_path, processor):
    write_images(tmp_path / "images", per_class=3)
    (tmp_path / "images" / "dark" / "broken.png").write_bytes(b"these bytes are no PNG")
    rows = load_rows(str(tmp_path / "images"), VISION, WHERE)
    assert len(rows) == 7  # the folder lists it; reading it is the collator's job
    batch = collate(processor, rows)
    assert (batch["num_rows"], batch["num_skipped"]) == (6, 1)
    assert batch["inputs"]["pixel_values"].shape == (6, 3, 16, 16)
    with pytest.raises(ValueError, match=r"broken\.png.*`tasks\.t\.data\.on_bad_sample=skip`"):
        collate(processor, rows, on_bad_sample="raise")


# ---------------------------------------------------------------------------------------------- path columns


def write_path_rows(path: Path, images: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"image": image, "caption": f"image {i}"}) + "\n" for i, image in enumerate(images)
        )
    )
    return path


@pytest.mark.parametrize("streaming", [False, True])
def test_image_paths_are_read_relative_to_the_data_file(tmp_path, monkeypatch, processor, streaming):
    written = write_images(tmp_path / "data" / "pics", per_class=4)
    relative = [str(p.relative_to(tmp_path / "data")) for p in written]
    source = write_path_rows(tmp_path / "data" / "rows.jsonl", relative)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the paths mean nothing from here
    assert not Path(relative[0]).exists()
    rows = load_rows(str(source), VISION, WHERE, streaming=streaming)
    assert isinstance(rows, IterableDataset) == streaming
    assert first_row(rows) == {"image": str(written[0])}  # absolute, and only the column the model reads
    read = list(rows)
    assert [row["image"] for row in read] == [str(p) for p in written]
    batch = collate(processor, read)
    assert (batch["num_rows"], batch["num_skipped"]) == (8, 0)
    assert torch.equal(batch["inputs"]["pixel_values"], pixels_of(processor, written))


def test_image_paths_of_files_in_several_folders_follow_each_file(tmp_path, processor):
    """Each data file's paths are relative to its own folder, absolute paths are kept."""
    written = write_images(tmp_path / "pics", per_class=2)
    write_path_rows(
        tmp_path / "data" / "a" / "rows.jsonl", [f"../../pics/dark/{p.name}" for p in written[:2]]
    )
    write_path_rows(tmp_path / "data" / "b" / "rows.jsonl", [str(p) for p in written[2:]])
    rows = load_rows(str(tmp_path / "data"), VISION, WHERE)
    assert [Path(p).resolve() for p in rows["image"]] == written
    assert torch.equal(collate(processor, rows)["inputs"]["pixel_values"], pixels_of(processor, written))


def test_missing_and_corrupt_image_files_are_skipped_or_named(tmp_path, processor):
    written = write_images(tmp_path / "data" / "pics", per_class=3)
    (tmp_path / "data" / "pics" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    relative = [str(p.relative_to(tmp_path / "data")) for p in written]
    source = write_path_rows(
        tmp_path / "data" / "rows.jsonl",
        [*relative[:2], "pics/missing.png", *relative[2:4], "pics/corrupt.png", *relative[4:]],
    )
    rows = list(load_rows(str(source), VISION, WHERE))
    batch = collate(processor, rows)
    assert (batch["num_rows"], batch["num_skipped"]) == (6, 2)
    # The good files, in their order.
    assert torch.equal(batch["inputs"]["pixel_values"], pixels_of(processor, written))
    for bad in ("missing.png", "corrupt.png"):
        good_and_bad = [row for row in rows if not row["image"].endswith(("missing.png", "corrupt.png"))]
        good_and_bad.insert(3, next(row for row in rows if row["image"].endswith(bad)))
        with pytest.raises(ValueError) as raised:
            collate(processor, good_and_bad, on_bad_sample="raise")
        assert str(tmp_path / "data" / "pics" / bad) in str(raised.value)
        assert "`tasks.t.data.on_bad_sample=skip`" in str(raised.value)
