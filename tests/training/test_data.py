"""The training data pipeline: loading, text packing, collation with bad samples, and the resumable,
rank-sharded batch order (map-style and streaming), checked with real `datasets` objects and files."""

import itertools
import json
from pathlib import Path

import datasets
import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDataset

import mmfm
from mmfm.data import BatchStream, EpochBatchSampler, RowCollator, first_row, load_rows, pack_texts
from mmfm.data.demo import load_demo_dataset, load_demo_tokenizer
from mmfm.modalities import get_modality
from mmfm.processing import MMFMProcessor

WHERE = "tasks.t.data"
TEXT, GRAPH = get_modality("text"), get_modality("graph")


def load(source, modality: str = "text", **options):
    """`load_rows` of `source` for `modality`, as the recipe calls it for `tasks.t.data`."""
    return load_rows(str(source), get_modality(modality), WHERE, **options)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep the Arrow caches `load_dataset` writes for local files inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


def keep_rows(rows: list[dict]) -> list[dict]:
    """A collate that returns the rows themselves (module level, so DataLoader workers can pickle it)."""
    return rows


def batch_stream(rows, rank=0, world_size=1, batch_size=4, num_workers=0, seed=0, shuffle_buffer=16):
    return BatchStream(
        rows, keep_rows, batch_size, rank, world_size, seed, num_workers, shuffle_buffer, WHERE
    )


def take(stream: BatchStream, count: int, key: str = "x") -> list[list]:
    return [[row[key] for row in next(stream)] for _ in range(count)]


def by_epoch(stream: BatchStream, num_epochs: int, key: str) -> list[list[list]]:
    """The batches of epochs 0..num_epochs-1 of a fresh stream, grouped by the epoch its state names."""
    epochs: list[list[list]] = [[]]
    while True:
        batch = [row[key] for row in next(stream)]
        epoch = stream.state_dict()["epoch"]
        if epoch == num_epochs:
            return epochs
        if epoch == len(epochs):
            epochs.append([])
        epochs[epoch].append(batch)


def flat(batches: list[list]) -> list:
    return list(itertools.chain.from_iterable(batches))


# ---------------------------------------------------------------------------------------------- EpochBatchSampler


def sampler(rank=0, world_size=1, batch_size=4, epoch=0, start=0, num_rows=103, seed=0) -> EpochBatchSampler:
    return EpochBatchSampler(num_rows, batch_size, rank, world_size, seed, epoch, start)


def test_sampler_ranks_split_each_global_batch_of_a_single_process():
    rank0, rank1 = list(sampler(rank=0, world_size=2)), list(sampler(rank=1, world_size=2))
    single = list(sampler(world_size=1, batch_size=8))
    assert len(rank0) == len(rank1) == len(single) == 103 // 8 == 12  # the incomplete tail is dropped
    assert all(len(batch) == 4 for batch in rank0 + rank1)
    seen0, seen1 = flat(rank0), flat(rank1)
    assert len(set(seen0)) == len(seen0) == 48 and len(set(seen1)) == len(seen1) == 48
    assert set(seen0).isdisjoint(seen1) and set(seen0 + seen1) <= set(range(103))
    for i, (a, b, together) in enumerate(zip(rank0, rank1, single)):
        assert a + b == together, f"global batch {i}"


def test_sampler_is_seeded_per_epoch():
    assert list(sampler(epoch=0)) == list(sampler(epoch=0))
    assert list(sampler(epoch=1)) != list(sampler(epoch=0))
    assert list(sampler(epoch=0, seed=1)) != list(sampler(epoch=0))


@pytest.mark.parametrize("start", [0, 1, 5, 11, 12])
def test_sampler_start_skips_exactly_the_batches_before_it(start):
    for rank in (0, 1):
        full = list(sampler(rank=rank, world_size=2, epoch=3))
        resumed = sampler(rank=rank, world_size=2, epoch=3, start=start)
        assert list(resumed) == full[start:]
        assert len(resumed) == 12 - start


@pytest.mark.parametrize(
    ("num_rows", "batch_size", "world_size", "expected"),
    [(103, 4, 2, 12), (103, 8, 1, 12), (104, 4, 2, 13), (8, 4, 2, 1), (7, 4, 2, 0), (103, 1, 1, 103)],
)
def test_sampler_len_counts_complete_global_batches(num_rows, batch_size, world_size, expected):
    for rank in range(world_size):
        batches = sampler(rank=rank, world_size=world_size, batch_size=batch_size, num_rows=num_rows)
        assert len(batches) == len(list(batches)) == expected


# ---------------------------------------------------------------------------------------------- BatchStream, map-style


def numbers(count: int = 50) -> Dataset:
    return Dataset.from_dict({"x": list(range(count))})


def test_map_stream_rolls_over_epochs_endlessly():
    stream = batch_stream(numbers(50))  # 12 batches of 4 per epoch, 2 rows dropped
    assert stream.state_dict() == {"epoch": 0, "position": 0}
    epochs = []
    for epoch in range(3):
        batches = take(stream, 12)
        assert stream.state_dict() == {"epoch": epoch, "position": 12}
        assert batches == list(sampler(epoch=epoch, num_rows=50))  # row x is index x
        assert len(set(flat(batches))) == 48
        epochs.append(batches)
    take(stream, 1)
    assert stream.state_dict() == {"epoch": 3, "position": 1}
    assert epochs[0] != epochs[1] != epochs[2]


@pytest.mark.parametrize("taken", [0, 5, 12, 13, 17, 24])
def test_map_stream_resumes_from_its_state(taken):
    rows = numbers(50)
    original = batch_stream(rows)
    take(original, taken)
    state = original.state_dict()
    expected = take(original, 15)  # always crosses at least one epoch boundary
    resumed = batch_stream(rows)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # as a checkpoint stores it
    assert take(resumed, 15) == expected
    assert resumed.state_dict() == original.state_dict()


def test_map_stream_ranks_share_no_row_within_an_epoch():
    rows = numbers(50)
    ranks = [batch_stream(rows, rank=rank, world_size=2) for rank in (0, 1)]
    single = batch_stream(rows, batch_size=8)
    for epoch in range(2):
        rank0, rank1 = take(ranks[0], 6), take(ranks[1], 6)  # 50 // 8 global batches
        assert [stream.state_dict() for stream in ranks] == [{"epoch": epoch, "position": 6}] * 2
        seen = flat(rank0) + flat(rank1)
        assert len(seen) == len(set(seen)) == 48
        assert [a + b for a, b in zip(rank0, rank1)] == take(single, 6)


def test_map_stream_needs_one_global_batch():
    with pytest.raises(ValueError, match=r"7 rows, fewer than one global batch \(4 per process x 2"):
        batch_stream(numbers(7), world_size=2)


def test_map_stream_with_workers_gives_the_same_batches():
    rows = numbers(20)  # 5 batches per epoch: 7 batches start workers for two epochs
    with_workers = batch_stream(rows, num_workers=2)
    assert take(with_workers, 7) == take(batch_stream(rows), 7)
    assert with_workers.state_dict() == {"epoch": 1, "position": 2}


# ---------------------------------------------------------------------------------------------- BatchStream, streaming


@pytest.fixture
def jsonl_files(tmp_path) -> list[Path]:
    """Three JSON-lines files of 40 rows, ids 0..119."""
    paths = []
    for part in range(3):
        path = tmp_path / f"part-{part}.jsonl"
        rows = [{"id": part * 40 + i, "text": f"row number {part * 40 + i}"} for i in range(40)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        paths.append(path)
    return paths


def json_stream(paths: list[Path]) -> IterableDataset:
    return datasets.load_dataset("json", data_files=[str(p) for p in paths], split="train", streaming=True)


def test_streaming_ranks_see_disjoint_rows_every_epoch(jsonl_files):
    rank0, rank1 = (
        by_epoch(batch_stream(json_stream(jsonl_files), rank=r, world_size=2), 2, "id") for r in (0, 1)
    )
    for epoch in range(2):
        # 3 shards do not split over 2 ranks: each rank takes every other row of the shuffled shards.
        assert len(rank0[epoch]) == len(rank1[epoch]) == 15
        seen0, seen1 = flat(rank0[epoch]), flat(rank1[epoch])
        assert len(set(seen0)) == len(seen0) == 60 and len(set(seen1)) == len(seen1) == 60
        assert sorted(seen0 + seen1) == list(range(120))
    assert rank0[0] != rank0[1] and rank1[0] != rank1[1]  # reshuffled per epoch


@pytest.mark.parametrize("taken", [3, 15, 17])
def test_streaming_resumes_from_its_state(jsonl_files, taken):
    original = batch_stream(json_stream(jsonl_files), rank=1, world_size=2)
    take(original, taken, "id")
    state = original.state_dict()
    expected = take(original, 4, "id")
    resumed = batch_stream(json_stream(jsonl_files), rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert take(resumed, 4, "id") == expected
    assert resumed.state_dict() == original.state_dict()


def test_streaming_rank_without_a_complete_batch_raises(tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(5)))  # rank 1 of 2 gets 2 rows
    stream = batch_stream(json_stream([path]), rank=1, world_size=2)
    with pytest.raises(ValueError, match=r"`tasks\.t\.data` gives this process \(rank 1\) no complete batch"):
        next(stream)


def test_load_rows_streams_only_the_text_column(jsonl_files, tmp_path):
    rows = load(tmp_path / "*.jsonl", streaming=True)
    assert isinstance(rows, IterableDataset)
    assert first_row(rows) == {"text": "row number 0"}
    assert [row["text"] for row in rows] == [f"row number {i}" for i in range(120)]


def test_first_row_reads_one_row_of_a_stream():
    read = []

    def rows():
        for i in range(1000):
            read.append(i)
            yield {"x": i}

    assert first_row(IterableDataset.from_generator(rows)) == {"x": 0}
    assert read == [0]
    assert first_row(numbers(3)) == {"x": 0}
    assert first_row(numbers(0)) is None
    assert first_row(IterableDataset.from_generator(lambda: iter(()))) is None


# ---------------------------------------------------------------------------------------------- load_rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("source", ["missing.jsonl", "missing_dir", "*.parquet", "empty_dir"])
def test_load_rows_missing_source_names_the_field(tmp_path, source):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match=r"`tasks\.t\.data\.source` = .* matches no data file"):
        load(tmp_path / source)


@pytest.mark.parametrize("streaming", [False, True])
def test_load_rows_empty_file(tmp_path, streaming):
    (tmp_path / "empty.jsonl").touch()
    with pytest.raises(ValueError, match=r"`tasks\.t\.data\.source` = .* holds no rows"):
        load(tmp_path / "empty.jsonl", streaming=streaming)


@pytest.mark.parametrize("streaming", [False, True])
def test_load_rows_wrong_text_column_names_text_column(tmp_path, streaming):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"content": f"text {i}", "n": i} for i in range(4)])
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\].*`tasks\.t\.data\.text_column`"):
        load(path, streaming=streaming)
    rows = load(path, streaming=streaming, text_column="content")
    assert [row["content"] for row in rows] == [f"text {i}" for i in range(4)]
    assert first_row(rows) == {"content": "text 0"}


def test_load_rows_mixed_extensions_need_format(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    (tmp_path / "b.csv").write_text("text\nb\n")
    with pytest.raises(ValueError, match=r"\['\.csv', '\.jsonl'\]; set `tasks\.t\.data\.format`"):
        load(tmp_path)


@pytest.mark.parametrize("streaming", [False, True])
def test_load_rows_unreadable_file_names_format(tmp_path, streaming):
    # No line is a JSON object (a CSV file named .jsonl): the file, not a few rows, is bad. A file with some
    # bad lines loads with them skipped (tests/training/test_bad_data.py).
    (tmp_path / "broken.jsonl").write_text("text,label\na,1\n")
    with pytest.raises(
        ValueError,
        match=r"Could not read `tasks\.t\.data\.source` .* as json.*broken\.jsonl:1.*`tasks\.t\.data\.format`",
    ):
        load(tmp_path / "broken.jsonl", streaming=streaming)


TEXTS = [f"sentence {i}" for i in range(6)]


@pytest.mark.parametrize("dict_of_splits", [False, True])
@pytest.mark.parametrize("streaming", [False, True])
def test_load_rows_reads_a_save_to_disk_folder(tmp_path, dict_of_splits, streaming):
    rows = Dataset.from_dict({"text": TEXTS, "label": list(range(6))})
    (DatasetDict(train=rows) if dict_of_splits else rows).save_to_disk(str(tmp_path / "saved"))
    loaded = load(tmp_path / "saved", streaming=streaming)
    assert isinstance(loaded, IterableDataset if streaming else Dataset)
    assert [row for row in loaded] == [{"text": t} for t in TEXTS]  # only the input column


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_load_rows_reads_each_file_format(tmp_path, suffix):
    rows = Dataset.from_dict({"text": TEXTS, "label": list(range(6))})
    path = tmp_path / f"rows{suffix}"
    {".parquet": rows.to_parquet, ".csv": rows.to_csv, ".jsonl": rows.to_json}[suffix](str(path))
    loaded = load(path)
    assert isinstance(loaded, Dataset) and loaded.column_names == ["text"]
    assert loaded["text"] == TEXTS


def test_load_rows_folder_of_files_in_name_order(tmp_path):
    for name, texts in [("b.jsonl", TEXTS[3:]), ("a.jsonl", TEXTS[:3])]:
        write_jsonl(tmp_path / name, [{"text": t} for t in texts])
    assert load(tmp_path)["text"] == TEXTS


def test_load_rows_include_keeps_the_listed_values():
    train = load_demo_dataset("timeseries", "ucr")["train"]
    gunpoint = [values for values, name in zip(train["past_values"], train["dataset"]) if name == "GunPoint"]
    assert 0 < len(gunpoint) < len(train)
    rows = load("demo", "timeseries", subsets=["ucr"], include={"dataset": ["GunPoint"]})
    assert rows.column_names == ["past_values"]
    assert len(rows) == len(gunpoint)
    assert rows["past_values"] == gunpoint


def test_load_rows_include_of_an_unknown_column_names_include():
    with pytest.raises(ValueError, match=r"`tasks\.t\.data\.include` names column 'archive'"):
        load("demo", "timeseries", subsets=["ucr"], include={"archive": ["GunPoint"]})


# ---------------------------------------------------------------------------------------------- pack_texts


@pytest.fixture(scope="module")
def tokenizer():
    return load_demo_tokenizer()


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    texts = list(load_demo_dataset("text", "corpus")["train"].select(range(50))["text"])
    assert all(isinstance(t, str) and t.strip() for t in texts)
    return texts


def packed(rows, tokenizer, on_bad_sample="skip") -> tuple[list[list[int]], list[int]]:
    """(blocks, num_skipped per block) of `pack_texts` into 16-token blocks, map-style or streaming."""
    blocks = list(pack_texts(rows, tokenizer, "text", 16, on_bad_sample, WHERE))
    return [block["input_ids"] for block in blocks], [block["num_skipped"] for block in blocks]


def as_rows(texts: list, streaming: bool) -> Dataset | IterableDataset:
    rows = Dataset.from_dict({"text": texts})
    return rows.to_iterable_dataset() if streaming else rows


@pytest.mark.parametrize("streaming", [False, True])
def test_pack_texts_cuts_exact_blocks_of_the_concatenation(tokenizer, corpus_texts, streaming):
    ids = flat(tokenizer(corpus_texts)["input_ids"])
    assert ids[0] == tokenizer.cls_token_id and ids.count(tokenizer.sep_token_id) >= len(corpus_texts)
    blocks, skipped = packed(as_rows(corpus_texts, streaming), tokenizer)
    assert len(blocks) == len(ids) // 16 > 1
    assert all(len(block) == 16 for block in blocks)
    assert flat(blocks) == ids[: 16 * len(blocks)]
    assert skipped == [0] * len(blocks)


@pytest.mark.parametrize("streaming", [False, True])
def test_pack_texts_counts_or_raises_on_bad_texts(tokenizer, corpus_texts, streaming):
    texts = list(corpus_texts)
    for position, bad in [(0, ""), (7, "   \n\t"), (20, None), (49, " ")]:
        texts.insert(position, bad)
    blocks, skipped = packed(as_rows(texts, streaming), tokenizer, on_bad_sample="skip")
    assert sum(skipped) == 4
    assert (blocks, sum(skipped[1:])) == (packed(as_rows(corpus_texts, streaming), tokenizer)[0], 0)
    with pytest.raises(
        ValueError, match=r"4 empty or non-text value\(s\) in column 'text' of `tasks\.t\.data"
    ):
        packed(as_rows(texts, streaming), tokenizer, on_bad_sample="raise")


# ---------------------------------------------------------------------------------------------- RowCollator


@pytest.fixture(scope="module")
def graph_processor() -> MMFMProcessor:
    return MMFMProcessor.from_model_config(mmfm.MMFMGraphConfig(node_feature_size=3))


def graph(num_nodes: int, edges: list[tuple[int, int]], width: int = 3) -> dict:
    """A demo-corpus graph row: (2, E) nested edge lists and (N, width) node features."""
    return {
        "num_nodes": num_nodes,
        "edge_index": [[s for s, _ in edges], [t for _, t in edges]],
        "node_features": [[float(n * width + k) for k in range(width)] for n in range(num_nodes)],
    }


def good_graphs() -> list[dict]:
    return [graph(3, [(0, 1), (1, 2)]), graph(4, [(0, 3), (2, 1), (3, 0)]), graph(2, [(0, 1)])]


BAD_GRAPHS = {
    "edge_to_missing_node": graph(3, [(0, 1), (1, 3)]),
    "features_too_narrow": graph(3, [(0, 1)], width=2),
}


def graph_collator(processor, on_bad_sample="skip") -> RowCollator:
    return RowCollator(GRAPH, processor, {}, "tasks.t", on_bad_sample=on_bad_sample)


@pytest.mark.parametrize("bad", sorted(BAD_GRAPHS))
@pytest.mark.parametrize("position", [0, 2, 3])
def test_collator_skips_bad_graph_rows(graph_processor, bad, position):
    clean = graph_collator(graph_processor)(good_graphs())
    assert (clean["num_rows"], clean["num_skipped"]) == (3, 0)
    rows = good_graphs()
    rows.insert(position, dict(BAD_GRAPHS[bad]))
    batch = graph_collator(graph_processor)(rows)
    assert (batch["num_rows"], batch["num_skipped"]) == (3, 1)
    assert set(batch["inputs"]) == {"node_features", "attention_mask", "edge_index"}
    assert batch["inputs"]["node_features"].shape == (3, 4, 3)
    for key, value in clean["inputs"].items():
        assert torch.equal(batch["inputs"][key], value), key


@pytest.mark.parametrize("bad", sorted(BAD_GRAPHS))
def test_collator_raise_names_on_bad_sample(graph_processor, bad):
    rows = [*good_graphs(), dict(BAD_GRAPHS[bad])]
    with pytest.raises(ValueError, match=r"`tasks\.t\.data\.on_bad_sample=skip`"):
        graph_collator(graph_processor, "raise")(rows)


def test_collator_batch_of_only_bad_rows(graph_processor):
    rows = [dict(BAD_GRAPHS[name]) for name in sorted(BAD_GRAPHS)]
    batch = graph_collator(graph_processor)(rows)
    bad = batch.pop("bad_rows")
    assert batch == {"inputs": None, "num_rows": 0, "num_skipped": 2}
    assert [b.batch_index for b in bad] == [0, 1]
    assert all(b.column == "['num_nodes', 'edge_index', 'node_features']" for b in bad)


@pytest.fixture(scope="module")
def text_processor(tokenizer) -> MMFMProcessor:
    return MMFMProcessor.from_model_config(mmfm.MMFMTextConfig(), tokenizer)


def test_collator_truncates_unpacked_text(tokenizer, text_processor, corpus_texts):
    texts = ["a red circle", *corpus_texts[:5]]
    full = tokenizer(texts)["input_ids"]
    assert len(full[0]) <= 8 and sum(len(ids) > 8 for ids in full) >= 3
    batch = RowCollator(TEXT, text_processor, {}, "tasks.t", max_length=8)([{"text": t} for t in texts])
    assert (batch["num_rows"], batch["num_skipped"]) == (len(texts), 0)
    for ids, whole in zip(batch["inputs"], full):
        if len(whole) <= 8:
            assert ids == whole
        else:
            assert ids == whole[:7] + [tokenizer.sep_token_id]


def test_collator_skips_empty_unpacked_text(tokenizer, text_processor):
    collate = RowCollator(TEXT, text_processor, {}, "tasks.t", max_length=8)
    batch = collate([{"text": "a red circle"}, {"text": "  "}, {"text": None}, {"text": "blue"}])
    assert [str(b) for b in batch.pop("bad_rows")] == [
        f"row {i} of a batch, column 'text', value {value}: empty or non-text value in column 'text'"
        for i, value in [(1, "'  '"), (2, "None")]
    ]
    assert batch == {
        "inputs": tokenizer(["a red circle", "blue"])["input_ids"],
        "num_rows": 2,
        "num_skipped": 2,
    }


def test_collator_passes_packed_blocks_and_their_skip_counts(text_processor):
    collate = RowCollator(TEXT, text_processor, {}, "tasks.t", max_length=4)
    rows = [
        {"input_ids": [2, 5, 6, 3], "num_skipped": 2, "skipped_rows": "a.jsonl:3: invalid JSON"},
        {"input_ids": [2, 7, 3, 2], "num_skipped": 0, "skipped_rows": ""},
    ]
    assert collate(rows) == {
        "inputs": [[2, 5, 6, 3], [2, 7, 3, 2]],
        "num_rows": 2,
        "num_skipped": 2,
        "bad_rows": ["a.jsonl:3: invalid JSON"],
    }
