"""Build, cache and load the demo corpus.

Layout under the corpus root (`demo_corpus_dir()`):

    <root>/<modality>/<subset>/   one `DatasetDict.save_to_disk` folder per subset ("train" [+ "test"])
    <root>/tokenizer/             WordPiece tokenizer trained on text/corpus (`load_demo_tokenizer`)
    <root>/manifest.json          rows per split, source, licence note and build seconds per subset,
                                  `skipped` subsets with the reason, the tokenizer's vocabulary size

A subset already on disk is not rebuilt unless `force=True`; a missing optional source (package,
program or file) skips its subset with a logged warning and a reason in the manifest.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from ...models import MODALITIES
from .sources import Builder, SourceUnavailable

logger = logging.getLogger(__name__)

# Each modality's subsets come from its module here, named by the modality (`mmfm/data/demo/<modality>.py`,
# a `SUBSETS` dict of builders), in the canonical modality order.
BUILDERS: dict[str, dict[str, Builder]] = {
    modality: importlib.import_module(f"{__package__}.{modality}").SUBSETS for modality in MODALITIES
}
DEMO_SUBSETS: dict[str, tuple[str, ...]] = {m: tuple(subsets) for m, subsets in BUILDERS.items()}
BUILD_COMMAND = "python -m mmfm.data.demo"
MANIFEST_NAME = "manifest.json"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_VOCAB_SIZE = 8000
DEFAULT_SEED = 0


def demo_corpus_dir(root: str | os.PathLike | None = None) -> Path:
    """The corpus root: `root`, else `$MMFM_DEMO_DIR`, else `$MMFM_HOME/demo` (`MMFM_HOME` defaults to
    `~/.cache/mmfm`)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("MMFM_DEMO_DIR"):
        return Path(os.environ["MMFM_DEMO_DIR"]).expanduser()
    return Path(os.environ.get("MMFM_HOME", "~/.cache/mmfm")).expanduser() / "demo"


def _build_hint(root: Path, modality: str | None = None) -> str:
    command = f"{BUILD_COMMAND} --root {root}"
    if modality is not None:
        command += f" --modalities {modality}"
    return f"`{command}` (or `mmfm.data.demo.build_demo_corpus(root={str(root)!r})`)"


def _check_name(modality: str, subset: str | None = None) -> None:
    if modality not in DEMO_SUBSETS:
        raise ValueError(f"Unknown demo modality {modality!r}; valid modalities: {list(DEMO_SUBSETS)}.")
    if subset is not None and subset not in DEMO_SUBSETS[modality]:
        raise ValueError(
            f"Unknown {modality} demo subset {subset!r}; "
            f"valid {modality} subsets: {list(DEMO_SUBSETS[modality])}."
        )


def _is_saved(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file()


def read_manifest(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of the corpus at `root`, or an empty skeleton when none was written yet."""
    path = demo_corpus_dir(root) / MANIFEST_NAME
    if path.is_file():
        return json.loads(path.read_text())
    return {"subsets": {}, "skipped": {}, "tokenizer": None}


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(root / MANIFEST_NAME)


def _select(modalities: Iterable[str] | None, subsets: Iterable[str] | None) -> list[tuple[str, str]]:
    """(modality, subset) pairs to build; `subsets` may name `"subset"` or `"modality/subset"`."""
    if isinstance(modalities, str) or isinstance(subsets, str):
        raise TypeError("`modalities` and `subsets` must be lists of names, not a single string.")
    chosen = list(DEMO_SUBSETS) if modalities is None else list(dict.fromkeys(modalities))
    for modality in chosen:
        _check_name(modality)
    pairs = [(m, s) for m in chosen for s in DEMO_SUBSETS[m]]
    if subsets is None:
        return pairs
    wanted = set()
    for name in subsets:
        if "/" in name:
            modality, subset = name.split("/", 1)
            _check_name(modality, subset)
            if modality not in chosen:
                raise ValueError(f"Subset {name!r} is not in the selected modalities {chosen}.")
            wanted.add((modality, subset))
            continue
        matches = [(m, s) for m, s in pairs if s == name]
        if not matches:
            valid = [f"{m}/{s}" for m, s in pairs]
            raise ValueError(f"Unknown demo subset {name!r} for modalities {chosen}; valid subsets: {valid}.")
        wanted.update(matches)
    return [p for p in pairs if p in wanted]


def _entry(result, dataset: datasets.DatasetDict, seconds: float | None, max_samples, seed) -> dict[str, Any]:
    return {
        "rows": {split: ds.num_rows for split, ds in dataset.items()},
        "columns": list(next(iter(dataset.values())).column_names),
        "source": result.source if result else None,
        "license": result.license if result else None,
        "notes": result.notes if result else [],
        "build_seconds": None if seconds is None else round(seconds, 2),
        "max_samples": max_samples,
        "seed": seed,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _build_subset(root: Path, modality: str, subset: str, max_samples, seed) -> dict[str, Any]:
    """Run one builder and save it atomically (a half-written folder must never look cached)."""
    start = time.perf_counter()
    result = BUILDERS[modality][subset](max_samples, seed)
    path = root / modality / subset
    tmp = path.with_name(f".{subset}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    result.dataset.save_to_disk(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)
    return _entry(result, result.dataset, time.perf_counter() - start, max_samples, seed)


def _train_tokenizer(root: Path) -> dict[str, Any]:
    """Train the WordPiece tokenizer on text/corpus and save it to `<root>/tokenizer`."""
    from mmfm.processing.tokenization import train_tokenizer

    start = time.perf_counter()
    corpus = datasets.load_from_disk(str(root / "text" / "corpus"))["train"]
    tokenizer = train_tokenizer(corpus["text"], vocab_size=TOKENIZER_VOCAB_SIZE, model="wordpiece")
    path = root / TOKENIZER_DIR
    shutil.rmtree(path, ignore_errors=True)
    tokenizer.save_pretrained(str(path))
    return {
        "path": TOKENIZER_DIR,
        "model": "wordpiece",
        "vocab_size": len(tokenizer),
        "requested_vocab_size": TOKENIZER_VOCAB_SIZE,
        "trained_on": "text/corpus",
        "num_texts": corpus.num_rows,
        "build_seconds": round(time.perf_counter() - start, 2),
    }


def build_demo_corpus(
    root: str | os.PathLike | None = None,
    modalities: Iterable[str] | None = None,
    subsets: Iterable[str] | None = None,
    max_samples: int | None = None,
    force: bool = False,
    progress: bool = True,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Build the missing demo subsets under `root`, train the tokenizer, write the manifest.

    Args:
        root: corpus root (see `demo_corpus_dir`).
        modalities: modality names to build (default: all of `DEMO_SUBSETS`).
        subsets: subset names (`"digits"` or `"vision/digits"`) to build within `modalities` (default: all).
        max_samples: at most this many rows per subset (per split for sources with their own train/test
            split); for quick test builds. Rows are taken round-robin over classes.
        force: rebuild subsets that are already on disk.
        progress: show a tqdm bar over the build steps.
        seed: seed of every random choice; the same seed gives the same rows.

    Returns:
        The manifest (also written to `<root>/manifest.json`), whose `last_build` lists what this call
        built, found cached and skipped.
    """
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 1):
        raise ValueError(f"`max_samples` must be a positive int or None, got {max_samples!r}.")
    root = demo_corpus_dir(root)
    targets = _select(modalities, subsets)
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    manifest.update(root=str(root), seed=seed)
    report: dict[str, list[str]] = {"built": [], "cached": [], "skipped": []}
    wants_tokenizer = ("text", "corpus") in targets
    start = time.perf_counter()
    bars_were_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar for the whole build, not one per save
    try:
        with tqdm(total=len(targets) + wants_tokenizer, desc="demo corpus", disable=not progress) as bar:
            for modality, subset in targets:
                key = f"{modality}/{subset}"
                bar.set_postfix_str(key)
                path = root / modality / subset
                if _is_saved(path) and not force:
                    _note_cached(manifest, key, path, max_samples, seed)
                    report["cached"].append(key)
                else:
                    try:
                        manifest["subsets"][key] = _build_subset(root, modality, subset, max_samples, seed)
                        manifest["skipped"].pop(key, None)
                        report["built"].append(key)
                        logger.info("built %s: %s", key, manifest["subsets"][key]["rows"])
                    except SourceUnavailable as err:
                        logger.warning("skipping demo subset %s: %s", key, err)
                        manifest["skipped"][key] = str(err)
                        report["skipped"].append(key)
                bar.update()
            if wants_tokenizer:
                bar.set_postfix_str("tokenizer")
                corpus_built = "text/corpus" in report["built"]
                has_tokenizer = (root / TOKENIZER_DIR / "tokenizer.json").is_file()
                if _is_saved(root / "text" / "corpus") and (corpus_built or force or not has_tokenizer):
                    manifest["tokenizer"] = _train_tokenizer(root)
                    logger.info("trained tokenizer: vocab size %d", manifest["tokenizer"]["vocab_size"])
                bar.update()
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()
        # Written even when a builder crashed, so the subsets built before it keep their entries.
        report["seconds"] = round(time.perf_counter() - start, 2)
        manifest["last_build"] = report
        _write_manifest(root, manifest)
    return manifest


def _note_cached(manifest: dict[str, Any], key: str, path: Path, max_samples, seed) -> None:
    """Keep the manifest entry of a cached subset; rebuild it from disk if the manifest lost it."""
    entry = manifest["subsets"].get(key)
    if entry is None:
        entry = _entry(None, datasets.load_from_disk(str(path)), None, None, None)
        entry["notes"] = ["manifest entry rebuilt from the files on disk"]
        manifest["subsets"][key] = entry
    elif entry.get("max_samples") != max_samples or entry.get("seed") != seed:
        logger.warning(
            "%s is cached with max_samples=%s, seed=%s (asked: %s, %s); force=True (--force) rebuilds it.",
            key, entry.get("max_samples"), entry.get("seed"), max_samples, seed,
        )  # fmt: skip
    manifest["skipped"].pop(key, None)


def load_demo_dataset(
    modality: str, subset: str, root: str | os.PathLike | None = None
) -> datasets.DatasetDict:
    """Load one built subset as a `DatasetDict` (see each modality module for its columns).

    Raises:
        ValueError: unknown modality or subset (the message lists the valid names).
        FileNotFoundError: the subset was not built (the message gives the build command and, when the
            last build skipped it, the reason).
    """
    _check_name(modality, subset)
    root = demo_corpus_dir(root)
    path = root / modality / subset
    if not _is_saved(path):
        reason = read_manifest(root)["skipped"].get(f"{modality}/{subset}")
        why = f" The last build skipped it: {reason}" if reason else ""
        raise FileNotFoundError(
            f"Demo subset {modality}/{subset} not found at {path}. "
            f"Build it with {_build_hint(root, modality)}.{why}"
        )
    return datasets.load_from_disk(str(path))


def load_demo_tokenizer(root: str | os.PathLike | None = None):
    """The WordPiece `PreTrainedTokenizerFast` trained on text/corpus by `build_demo_corpus`."""
    root = demo_corpus_dir(root)
    path = root / TOKENIZER_DIR
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"Demo tokenizer not found at {path}; it is trained with text/corpus. Build it with "
            f"{_build_hint(root, 'text')}."
        )
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path))
