"""Where a saved model that a run starts from comes from: a local folder (`save_pretrained`, a run's
`model/`) or a Hugging Face Hub id (`user/name`, optionally `user/name@revision`), resolved to a folder of the
local Hub cache with `huggingface_hub.snapshot_download`.

Offline (`HF_HUB_OFFLINE=1`) an id resolves from the cache only (`local_files_only=True`): a model downloaded
once (`hf download user/name`) is used without the network, and one that is not cached is refused before
anything is built, naming the field, the id and the fix. Online, the main process downloads (or updates) the
snapshot first and every other process resolves the same commit (`resolve_for_run`).

The value the user wrote stays in the run config (`run_config.yaml`); `ModelSource.record()` is what the run
writes to `metrics.json` (`init_from`) so a model card can name the base model and its commit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# `user/name` or `user/name@revision`; the Hub's own rules for names (letters, digits, `-`, `_`, `.`).
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?")


@dataclass(frozen=True)
class ModelSource:
    """A saved model named by a run field, resolved to a local folder.

    Attributes:
        value: what the config says (a folder, or `user/name[@revision]`).
        folder: the local folder read from (the value itself, or a snapshot folder of the Hub cache).
        repo_id: the Hub id, None for a local folder.
        revision: the revision asked for (`@revision`), None for the default branch.
        commit: the commit hash of the snapshot used (Hub ids only).
    """

    value: str
    folder: str
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def record(self) -> dict[str, str | None]:
        """The source as JSON data (for `metrics.json`)."""
        return asdict(self)


# Resolutions that are final for this process (a local folder, or a Hub id located as the run decided), so
# the tokenizer, the model, the checks and the evaluation of one run read the same snapshot.
_RESOLVED: dict[str, ModelSource] = {}


def parse_hub_id(value: str) -> tuple[str, str | None] | None:
    """`"user/name@rev"` -> `("user/name", "rev")`; None when `value` is not of that form."""
    match = HUB_ID.fullmatch(value)
    return (match["repo"], match["revision"]) if match else None


def is_offline() -> bool:
    """`HF_HUB_OFFLINE` as `huggingface_hub` read it when imported."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def resolve_model_source(
    value: str, field: str, local_files_only: bool | None = None, revision: str | None = None
) -> ModelSource:
    """The local folder of a saved model named by `field` (e.g. `tasks.mlm.model.init_from`).

    Args:
        value: a local folder, or a Hub id `user/name[@revision]` (a folder that exists wins).
        field: the config field, for messages.
        local_files_only: read the Hub cache only; None: only when offline (`HF_HUB_OFFLINE=1`).
        revision: a commit to resolve instead of the one `value` names (other processes of a run resolve the
            main process's commit).

    Raises:
        FileNotFoundError: neither a folder nor a Hub id; a Hub id not in the cache while offline (naming
            `hf download`); a Hub id the Hub does not know.
    """
    if value in _RESOLVED and revision is None:
        return _RESOLVED[value]
    if Path(value).expanduser().is_dir():
        source = ModelSource(value=value, folder=str(Path(value).expanduser()))
        _RESOLVED[value] = source
        return source
    hub = parse_hub_id(value)
    if hub is None:
        raise FileNotFoundError(
            f"`{field}` = {value!r} is neither a folder nor a Hugging Face Hub id (`user/name` or "
            "`user/name@revision`). Point it at a folder written by `save_pretrained` (a run's `model/`)."
        )
    repo_id, asked = hub
    offline = is_offline() if local_files_only is None else local_files_only
    folder = _snapshot(repo_id, revision or asked, offline, value, field)
    source = ModelSource(value, folder, repo_id, asked, Path(folder).name)
    if offline == is_offline():  # a cache-only look-up while online is not what the run will use
        _RESOLVED[value] = source
    return source


def _snapshot(repo_id: str, revision: str | None, offline: bool, value: str, field: str) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return snapshot_download(repo_id, revision=revision, local_files_only=offline)
    except LocalEntryNotFoundError as err:
        if not offline:  # online, but the Hub could not be reached and nothing is cached
            raise FileNotFoundError(
                f"`{field}` = {value!r}: the Hub could not be reached and the model is not in the local cache "
                f"({err}). Download it first with `hf download {value.replace('@', ' --revision ')}`, or point "
                f"`{field}` at a local folder."
            ) from err
        raise FileNotFoundError(
            f"`{field}` = {value!r} is not in the local Hugging Face cache, and the Hub is offline "
            f"(HF_HUB_OFFLINE=1). Download it first while online with "
            f"`hf download {value.replace('@', ' --revision ')}`, or point `{field}` at a local folder "
            "(a run's `model/`)."
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise FileNotFoundError(
            f"`{field}` = {value!r}: the Hub has no such model or revision ({type(err).__name__}). Check the id, "
            "log in for a private model (`hf auth login`), or point it at a local folder."
        ) from err
    except HfHubHTTPError as err:
        raise FileNotFoundError(f"`{field}` = {value!r} could not be downloaded ({err}).") from err


def cached_model_source(value: str, field: str) -> ModelSource | None:
    """The source of `value` when it can be read now without the network (a folder, or a Hub id in the cache
    or already resolved by this run); None for a Hub id that must be downloaded first (online only).

    Raises:
        FileNotFoundError: as `resolve_model_source`, except for an uncached Hub id while online.
    """
    if value in _RESOLVED or Path(value).expanduser().is_dir() or is_offline():
        return resolve_model_source(value, field)
    try:
        return resolve_model_source(value, field, local_files_only=True)
    except FileNotFoundError:
        if parse_hub_id(value) is None:
            raise
        return None


def resolve_for_run(accelerator, value: str, field: str) -> ModelSource:
    """`value` resolved the same way on every process: the main process locates (online: downloads or
    updates) the snapshot; the others then read that commit (from the cache it wrote, or downloaded on a node
    of their own). Every process must call this."""
    from .collective import main_process_result

    source = main_process_result(
        accelerator, lambda: resolve_model_source(value, field), errors=(FileNotFoundError, ValueError)
    )
    if not accelerator.is_main_process and source.repo_id is not None:
        source = resolve_model_source(value, field, revision=source.commit)
        source = ModelSource(value, source.folder, source.repo_id, parse_hub_id(value)[1], source.commit)
    _RESOLVED[value] = source
    if source.repo_id is not None:
        logger.info("%s = %s: commit %s, read from %s", field, value, source.commit, source.folder)
    return source


def forget_resolutions() -> None:
    """Drop the remembered resolutions (tests that change the cache or the offline mode between runs)."""
    _RESOLVED.clear()


__all__ = [
    "HUB_ID",
    "ModelSource",
    "cached_model_source",
    "forget_resolutions",
    "is_offline",
    "parse_hub_id",
    "resolve_for_run",
    "resolve_model_source",
]
