"""Paired rows (mmfm.data.paired): the row convention, the paired demo subsets made from the small test
corpus, and the collator that prepares every side of a batch of pairs."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Features, List, Value
from filelock import FileLock
from PIL import Image
from torch.utils.data import DataLoader

from mmfm.data import PAIRED_DEMO_SUBSETS, PairedRowCollator, load_paired_demo, paired_modalities
from mmfm.data.bad_rows import ROW_INDEX, BadRow
from mmfm.data.demo import build_demo_corpus, load_demo_dataset, load_demo_tokenizer
from mmfm.data.demo.graph import ATOM_FEATURE_SIZE
from mmfm.data.demo.timeseries import CAPTIONED_LENGTH, CYCLES, TRENDS, build_captioned
from mmfm.modalities import get_modality
from mmfm.models import MODALITIES
from mmfm.processing import MMFMProcessor
from tests.model_inputs import tiny_config

# The corpus the training tests build (tests/training/conftest.py), plus the sources only paired subsets use.
TEST_HOME = Path(__file__).resolve().parents[2] / ".cache" / "mmfm-tests"
SOURCES = sorted({source for subset in PAIRED_DEMO_SUBSETS.values() for source in subset.sources})
EXPECTED_COLUMNS = {
    "shapes_captions": {"image", "text", "label"},
    "digit_captions": {"image", "text", "label"},
    "emoji_names": {"image", "text"},
    "spoken_digit_transcripts": {"audio", "sampling_rate", "text", "label"},
    "spoken_word_transcripts": {"audio", "sampling_rate", "text", "label"},
    "speech_captions": {"audio", "sampling_rate", "text"},
    "molecule_names": {"num_nodes", "edge_index", "node_features", "text"},
    "series_captions": {"past_values", "text", "label"},
    "spoken_digit_images": {"audio", "sampling_rate", "image", "label"},
}
MAX_LENGTH = 16


SKIPPED: dict[str, str] = {}  # sources this machine cannot build, with the reason


@pytest.fixture(scope="module")
def root():
    """The small test corpus with every paired subset's sources and the tokenizer, built once per checkout."""
    TEST_HOME.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TEST_HOME / "build.lock")):  # shared with the training tests' build
        manifest = build_demo_corpus(
            TEST_HOME / "demo", subsets=["text/corpus", *SOURCES], max_samples=400, progress=False
        )
    SKIPPED.update(manifest["skipped"])
    if "text/corpus" in SKIPPED:
        pytest.skip(f"text/corpus (the tokenizer) skipped by the build: {SKIPPED['text/corpus']}")
    return TEST_HOME / "demo"


def load_paired(name: str, split: str, root: Path):
    """`load_paired_demo`, skipping the test when this machine lacks one of the subset's sources."""
    for source in PAIRED_DEMO_SUBSETS[name].sources:
        if source in SKIPPED:
            pytest.skip(f"{source} skipped by the build: {SKIPPED[source]}")
    return load_paired_demo(name, split, root=root)


@pytest.fixture(scope="module")
def processor(root):
    """Tiny-config processors for every modality (graph: the molecules' atom features), the demo tokenizer."""
    configs = {m: tiny_config(m) for m in MODALITIES if m != "text"}
    configs["graph"] = tiny_config("graph", node_feature_size=ATOM_FEATURE_SIZE)
    processors = {m: get_modality(m).build_processor(config) for m, config in configs.items()}
    return MMFMProcessor(text=load_demo_tokenizer(root), **processors)


def content_keys(rows) -> list[str]:
    """A hash per row of everything but its label and text (which repeat across rows by design): its Arrow
    cells serialized (a one-row slice serializes only that row's values)."""
    columns = [c for c in rows.column_names if c not in ("label", "text")]
    table = rows.select_columns(columns).with_format("arrow")[:].combine_chunks()
    return [hashlib.sha1(table.slice(i, 1).to_batches()[0].serialize()).hexdigest() for i in range(len(rows))]


# ------------------------------------------------------------------------------------------ row convention


def test_paired_modalities():
    assert paired_modalities(["label", "image", "text"]) == ("text", "vision")
    assert paired_modalities(["image", "audio", "sampling_rate"]) == ("vision", "audio")
    assert paired_modalities(["past_values", "caption"], text_column="caption") == ("text", "timeseries")
    assert paired_modalities(["num_nodes", "edge_index", "text"]) == ("text", "graph")  # features optional
    assert paired_modalities(["num_nodes", "node_features"]) == ()  # no edge_index: no graph
    assert paired_modalities([]) == ()


def test_registry():
    assert set(PAIRED_DEMO_SUBSETS) == set(EXPECTED_COLUMNS)
    for name, subset in PAIRED_DEMO_SUBSETS.items():
        assert subset.description and "\n" not in subset.description, name
        assert subset.modalities == paired_modalities(EXPECTED_COLUMNS[name]), name
        assert len(subset.modalities) >= 2, name
    assert PAIRED_DEMO_SUBSETS["spoken_digit_images"].modalities == ("vision", "audio")


# ------------------------------------------------------------------------------------- paired demo subsets


@pytest.mark.parametrize("name", list(EXPECTED_COLUMNS))
def test_paired_subset_loads(root, name):
    splits = {split: load_paired(name, split, root) for split in ("train", "test")}
    for split, rows in splits.items():
        assert set(rows.column_names) == EXPECTED_COLUMNS[name], (name, split)
        assert paired_modalities(rows.column_names) == PAIRED_DEMO_SUBSETS[name].modalities
        assert rows.num_rows > 0, (name, split)
        if "text" in rows.column_names:
            assert all(isinstance(t, str) and t.strip() for t in rows["text"][:20])
    train, test = (splits[s] for s in ("train", "test"))
    assert 0.1 < test.num_rows / (train.num_rows + test.num_rows) < 0.3
    assert not set(content_keys(train)) & set(content_keys(test)), f"{name}: a row is in both splits"
    again = load_paired(name, "test", root)  # deterministic
    assert content_keys(again) == content_keys(test)


def test_caption_columns_are_the_source_captions(root):
    shapes = load_demo_dataset("vision", "shapes", root=root)["test"]
    rows = load_paired("shapes_captions", "test", root)
    assert rows["text"] == shapes["caption"] and rows["label"] == shapes["label"]
    spoken = load_demo_dataset("audio", "spoken_digits", root=root)["train"]
    assert load_paired("spoken_digit_transcripts", "train", root)["text"] == spoken["transcript"]


def test_spoken_digit_images_pair_same_digit(root):
    for split in ("train", "test"):
        digits = load_demo_dataset("vision", "digits", root=root)[split]
        cells = digits.with_format("arrow")[:]
        label_of = {
            image["bytes"]: label
            for image, label in zip(cells.column("image").to_pylist(), cells.column("label").to_pylist())
        }
        rows = load_paired("spoken_digit_images", split, root)
        spoken = load_demo_dataset("audio", "spoken_digits", root=root)[split]
        assert rows["label"] == spoken["label"]  # one row per clip, in order
        images = rows.with_format("arrow")[:].column("image").to_pylist()
        # Every image comes from the same split of vision/digits and shows the clip's digit.
        assert [label_of[image["bytes"]] for image in images] == rows["label"]
        assert len({image["bytes"] for image in images}) > 0.5 * len(images)  # spread over the images


def test_series_captions_describe_the_series(root):
    rows = load_paired("series_captions", "train", root)
    pattern = re.compile(r"a (smooth|noisy) (rising|falling|flat) series( with .+)?")
    seen = set()
    for row in rows:
        text, trend = row["text"], TRENDS[row["label"]]
        match = pattern.fullmatch(text)
        assert match and match.group(2) == trend, text
        values = np.asarray(row["past_values"], dtype=np.float64)
        assert values.shape == (CAPTIONED_LENGTH, 1)
        values = values[:, 0]
        # Fitted rise over the series, in units of the series' spread (its scale and offset are random).
        rise = np.polyfit(np.arange(len(values)), values, 1)[0] * (len(values) - 1) / values.std()
        shifted = "jump" in text or "drop" in text
        if trend == "rising":
            assert rise > 1.0, text
        elif trend == "falling":
            assert rise < -1.0, text
        elif not shifted:
            assert abs(rise) < 1.0, text
        seen.add((trend, shifted))
    assert len(seen) == 6  # every trend, with and without a level shift


def test_captioned_demo_subset(root):
    splits = load_demo_dataset("timeseries", "captioned", root=root)
    assert splits["train"].features == Features(
        {
            "past_values": List(List(Value("float32"))),
            "dataset": Value("string"),
            "label": ClassLabel(names=list(TRENDS)),
            "caption": Value("string"),
            "period": Value("int64"),
        }
    )
    for rows in splits.values():
        counts = np.bincount(rows["label"], minlength=len(TRENDS))
        assert counts.max() - counts.min() <= 2  # as many series per trend
    full = build_captioned(None, seed=0).dataset  # the full subset: 600 / 150, the same for the same seed
    assert {split: rows.num_rows for split, rows in full.items()} == {"train": 600, "test": 150}
    assert full["test"]["caption"] == build_captioned(None, seed=0).dataset["test"]["caption"]
    assert full["test"]["caption"] != build_captioned(None, seed=1).dataset["test"]["caption"]


def test_series_captions_name_the_cycle(root):
    captioned = load_demo_dataset("timeseries", "captioned", root=root)["train"]
    checked = 0
    for row in captioned.select(range(60)):
        period, caption = row["period"], row["caption"]
        for p, word in CYCLES.items():
            assert (f"a {word} cycle" in caption) == (p == period), caption
        if period and "smooth" in caption and not re.search("jump|drop|spike|dip", caption):
            values = np.asarray(row["past_values"], dtype=np.float64)[:, 0]
            steps = np.arange(len(values))
            residual = values - np.polyval(np.polyfit(steps, values, 1), steps)
            frequency = np.argmax(np.abs(np.fft.rfft(residual))[1:]) + 1
            assert abs(len(values) / frequency - period) < 0.15 * period, caption
            checked += 1
    assert checked >= 3


def test_load_paired_demo_errors(tmp_path, root):
    with pytest.raises(ValueError, match="valid subsets: .*shapes_captions.*spoken_digit_images"):
        load_paired_demo("shape_captions", root=root)
    with pytest.raises(ValueError, match="valid splits: \\['train', 'test'\\]"):
        load_paired_demo("shapes_captions", "validation", root=root)
    with pytest.raises(
        FileNotFoundError, match="made from demo subset vision/shapes.*python -m mmfm.data.demo"
    ):
        load_paired_demo("shapes_captions", root=tmp_path)


# ---------------------------------------------------------------------------------------------- collator

PAIRS = {
    "shapes_captions": ("text", "vision"),
    "spoken_digit_transcripts": ("text", "audio"),
    "molecule_names": ("text", "graph"),
    "series_captions": ("text", "timeseries"),
    "spoken_digit_images": ("audio", "vision"),
}
OPTIONS = {"timeseries": {"truncation": True}}  # the tiny encoder's context (64) is shorter than the series


def collator(processor, modalities, **kwargs) -> PairedRowCollator:
    options = {m: o for m, o in OPTIONS.items() if m in modalities}
    return PairedRowCollator(
        processor, modalities, "tasks.clip", max_length=MAX_LENGTH, processor_kwargs=options, **kwargs
    )


def take(name: str, root, n: int = 6) -> list[dict]:
    rows = load_paired(name, "train", root)
    return [{**rows[i], ROW_INDEX: i} for i in range(n)]


def check_side(modality: str, inputs: dict, batch: int) -> None:
    """Every tensor of a side has the batch first; the shapes each encoder needs."""
    assert all(isinstance(v, torch.Tensor) and v.shape[0] == batch for v in inputs.values()), modality
    if modality == "text":
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        assert ids.shape == mask.shape and ids.ndim == 2 and ids.shape[1] <= MAX_LENGTH
        assert bool(mask[:, 0].all())
    elif modality == "vision":
        assert inputs["pixel_values"].shape == (batch, 3, 32, 32)
    elif modality == "audio":
        features, mask = inputs["input_features"], inputs["attention_mask"]
        assert features.ndim == 3 and features.shape[2] == 32 and mask.shape == features.shape[:2]
    elif modality == "graph":
        features, mask = inputs["node_features"], inputs["attention_mask"]
        assert features.shape[::2] == (batch, ATOM_FEATURE_SIZE) and mask.shape == features.shape[:2]
        assert inputs["edge_index"].shape[:2] == (batch, 2)
    else:
        assert inputs["past_values"].shape == (batch, 64, 1) == inputs["past_observed_mask"].shape


@pytest.mark.parametrize("name", list(PAIRS))
def test_collator_shapes(root, processor, name):
    modalities = PAIRS[name]
    batch = collator(processor, modalities)(take(name, root))
    assert batch["num_rows"] == 6 and batch["num_skipped"] == 0 and batch["bad_rows"] == []
    assert set(batch["inputs"]) == set(modalities)
    for modality in modalities:
        check_side(modality, batch["inputs"][modality], 6)


def test_collator_pads_and_truncates_text(root, processor):
    rows = take("shapes_captions", root, 8)
    rows[0]["text"] = "a red circle"
    rows[1]["text"] = " ".join(["a large blue square to the left of a small green triangle"] * 4)
    text = collator(processor, ("text", "vision"))(rows)["inputs"]["text"]
    assert text["input_ids"].shape[1] == MAX_LENGTH  # the long caption is cut
    assert text["attention_mask"][1].all() and not text["attention_mask"][0].all()  # the short one is padded
    pad = processor["text"].pad_token_id
    assert (text["input_ids"][0][text["attention_mask"][0] == 0] == pad).all()


def test_collator_skips_bad_pairs(root, processor):
    rows = take("shapes_captions", root, 6)
    rows[1]["image"] = None  # a missing side
    del rows[2]["text"]  # a missing column
    rows[3]["image"] = {"bytes": b"not an image at all", "path": None}  # unreadable
    rows[4]["text"] = "   "  # empty text
    batch = collator(processor, ("text", "vision"))(rows)
    assert batch["num_rows"] == 2 and batch["num_skipped"] == 4
    check_side("vision", batch["inputs"]["vision"], 2)
    check_side("text", batch["inputs"]["text"], 2)
    bad = {b.row: b for b in batch["bad_rows"]}
    assert all(isinstance(b, BadRow) for b in bad.values()) and set(bad) == {
        f"dataset row {i}" for i in (1, 2, 3, 4)
    }
    assert (bad["dataset row 1"].column, bad["dataset row 1"].value) == ("'image'", "None")
    assert "no vision side" in bad["dataset row 1"].error
    assert bad["dataset row 2"].column == "'text'" and "no column 'text'" in bad["dataset row 2"].error
    assert bad["dataset row 3"].column == "'image'" and "cannot read image" in bad["dataset row 3"].error
    assert "not an im" in bad["dataset row 3"].value
    assert bad["dataset row 4"].column == "'text'" and bad["dataset row 4"].value == "'   '"
    assert str(bad["dataset row 1"]).startswith("dataset row 1, column 'image', value None: ")


def test_collator_carried_counts_and_empty_batch(root, processor):
    rows = take("series_captions", root, 3)
    rows[0]["num_skipped"], rows[0]["skipped_rows"] = 2, "rows.jsonl:3: invalid JSON"
    for row in rows[1:]:
        row["past_values"] = None
    batch = collator(processor, ("text", "timeseries"))(rows)
    assert batch["num_rows"] == 1 and batch["num_skipped"] == 4
    assert batch["bad_rows"][0] == "rows.jsonl:3: invalid JSON"
    empty = collator(processor, ("text", "timeseries"))([{"text": "a flat series", "past_values": None}])
    assert empty["inputs"] is None and empty["num_rows"] == 0 and empty["num_skipped"] == 1


def test_collator_raise(root, processor):
    rows = take("spoken_digit_images", root, 4)
    rows[2]["audio"] = None
    with pytest.raises(
        ValueError, match=r"dataset row 2, column 'audio', value None.*tasks\.clip\.data\.on_bad_sample"
    ):
        collator(processor, ("audio", "vision"), on_bad_sample="raise")(rows)
    rows = take("spoken_digit_images", root, 4)
    rows[2]["audio"] = None
    with pytest.raises(ValueError, match=r"Set `tasks\.clip\.data\.on_bad_sample=skip`"):  # the data section
        PairedRowCollator(processor, ("audio", "vision"), "tasks.clip.data", on_bad_sample="raise")(rows)
    rows = take("spoken_digit_images", root, 4)
    rows[1]["image"] = {"bytes": b"\x89PNG broken", "path": None}
    with pytest.raises(ValueError, match=r"dataset row 1, column 'image', value .*cannot read image"):
        collator(processor, ("audio", "vision"), on_bad_sample="raise")(rows)


def test_collator_in_dataloader_workers(root, processor):
    collate = collator(processor, ("text", "vision"))
    copy = pickle.loads(pickle.dumps(collate))
    rows = load_paired("digit_captions", "train", root).select(range(8))
    expected = collate([dict(r) for r in rows])
    assert torch.equal(
        copy([dict(r) for r in rows])["inputs"]["vision"]["pixel_values"],
        expected["inputs"]["vision"]["pixel_values"],
    )
    loader = DataLoader(rows, batch_size=4, num_workers=1, collate_fn=copy)
    batches = list(loader)
    assert [b["num_rows"] for b in batches] == [4, 4]
    got = torch.cat([b["inputs"]["vision"]["pixel_values"] for b in batches])
    assert torch.equal(got, expected["inputs"]["vision"]["pixel_values"])


def test_collator_arguments(processor):
    vision_only = MMFMProcessor(vision=processor["vision"])
    with pytest.raises(ValueError, match="no text processor"):
        PairedRowCollator(vision_only, ("text", "vision"), "tasks.clip")
    with pytest.raises(ValueError, match="Unknown modality 'image'"):
        PairedRowCollator(processor, ("text", "image"), "tasks.clip")
    with pytest.raises(ValueError, match="on_bad_sample"):
        PairedRowCollator(processor, ("text", "vision"), "tasks.clip", on_bad_sample="drop")
    with pytest.raises(ValueError, match="twice"):
        PairedRowCollator(processor, ("text", "text"), "tasks.clip")
    with pytest.raises(ValueError, match="processor_kwargs"):
        PairedRowCollator(processor, ("text", "vision"), "tasks.clip", processor_kwargs={"audio": {}})


def test_collator_accepts_pil_and_arrays(processor):
    rows = [
        {"text": "a red square", "image": Image.new("RGB", (20, 20), "red")},
        {"text": "a grey square", "image": np.full((12, 12), 128, dtype=np.uint8)},
        {"text": "a png", "image": {"bytes": _png(), "path": None}},
    ]
    batch = collator(processor, ("text", "vision"))(rows)
    assert batch["num_rows"] == 3
    check_side("vision", batch["inputs"]["vision"], 3)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 200).save(buffer, format="PNG")
    return buffer.getvalue()
