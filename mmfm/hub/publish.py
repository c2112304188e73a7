"""Publish a run, a model folder or an adapter folder to the Hugging Face Hub: assemble the upload folder (the
export's files, a README.md model card, the loss plot), then create the repository and upload the folder with
`HfApi`, or stop there (`dry_run`).

The token comes from huggingface_hub's own sources (the `token` argument, `HF_TOKEN`, the login stored by
`hf auth login`); the endpoint from `HF_ENDPOINT`. Every check that can fail before the upload runs first, so a
bad repository id, offline mode or a missing token costs nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import HFValidationError, validate_repo_id

from . import facts
from .card import DEFAULT_LICENSE, build_model_card
from .source import LOSS_PLOT, PublishSource, resolve_source

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
PUBLISH_DIR = "publish"
# How each setting is called where the user sets it: the command line, or a run config's `hub` section.
CLI_NAMES = {
    "repo_id": "--repo-id",
    "revision": "--revision",
    "create_pr": "--create-pr",
    "dry_run": "--dry-run",
}
CONFIG_NAMES = {"repo_id": "hub.model_id", "revision": "hub.revision", "create_pr": "create_pr",
                "dry_run": "hub.push_to_hub=false"}  # fmt: skip


@dataclass
class PublishResult:
    """What `publish` did.

    Attributes:
        folder: the assembled upload folder (removed after a push when it was a temporary one).
        files: its files, relative to it, sorted.
        repo_id: the repository pushed to (None for a dry run).
        commit_url: the commit's URL on the Hub (None for a dry run).
        pr_url: the pull request's URL (with `create_pr`).
    """

    folder: Path
    files: list[str] = field(default_factory=list)
    repo_id: str | None = None
    commit_url: str | None = None
    pr_url: str | None = None


def publish(
    source: str | os.PathLike | PublishSource,
    repo_id: str | None = None,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    dry_run: bool = False,
    out_dir: str | os.PathLike | None = None,
    license: str = DEFAULT_LICENSE,
    task: str | None = None,
    base_model: str | None = None,
) -> PublishResult:
    """Publish `source` (a run folder, a model folder or a PEFT adapter folder) as `repo_id`.

    Args:
        source: the folder, or an already resolved `PublishSource`.
        repo_id: `<user or org>/<name>` (or `<name>` in the token's namespace); optional with `dry_run`.
        private: create the repository private (an existing one keeps its visibility).
        revision: the branch to push to, created from main when missing (None: main).
        commit_message: the commit's summary (default: names the model and its steps).
        create_pr: open a pull request against main instead of pushing to it.
        token: a Hub token; None reads `HF_TOKEN` or the stored login.
        dry_run: assemble the folder and card only; nothing is uploaded.
        out_dir: where to assemble the folder (must be empty or new). Default: a temporary folder for a push;
            `<run>/publish[/<task>]` or `<folder>-publish` for a dry run (replaced on each dry run).
        license: the card's license (a Hub license id).
        task: a multi-task run's task to publish.
        base_model: the Hub id of the base model, replacing a recorded local folder (adapters, continued runs).

    Raises:
        FileNotFoundError / ValueError: a source that is not a run, model or adapter folder; a multi-task run
            without `task`; no `repo_id` without `dry_run`; an invalid repository id or `base_model`;
            `create_pr` with a `revision`; HF_HUB_OFFLINE=1; no token; a token the Hub refuses.
    """
    resolved = source if isinstance(source, PublishSource) else resolve_source(source, task)
    if base_model is not None and not facts.is_hub_id(base_model):
        raise ValueError(
            f"`--base-model` {base_model!r} is not a Hub model id: give `<user or org>/<name>` of the base model "
            "as published on the Hub."
        )
    if not dry_run:
        token = check_push_settings(repo_id, revision, create_pr, token)
    temporary = out_dir is None and not dry_run
    folder = (
        Path(tempfile.mkdtemp(prefix="mmfm-publish-")) if temporary else _output_folder(resolved, out_dir)
    )
    try:
        files = assemble(resolved, folder, repo_id, license=license, base_model=base_model, link=temporary)
        result = PublishResult(folder, files)
        if dry_run:
            logger.info(
                "Dry run: the upload folder is %s (%d files); nothing was uploaded.", folder, len(files)
            )
            return result
        return _upload(result, repo_id, private, revision, create_pr, token,
                       commit_message or _commit_message(resolved))  # fmt: skip
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def check_push_settings(
    repo_id: str | None,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    names: dict[str, str] = CLI_NAMES,
) -> str:
    """Everything a push needs that can be checked without the network; returns the token.

    Args:
        names: how each setting is named in the messages (`CLI_NAMES` or `CONFIG_NAMES`).

    Raises:
        ValueError: no or an invalid repository id, `create_pr` with a branch, offline mode, no token.
    """
    if not repo_id:
        raise ValueError(
            f"No `{names['repo_id']}`: name the Hub repository to push to, e.g. `{names['repo_id']} <user>/<name>` "
            f"(or `{names['dry_run']}` to only write the folder and model card)."
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(
            f"`{names['repo_id']}` {repo_id!r} is not a valid Hub repository id ({err}); use `<user or org>/<name>` "
            "with letters, digits, `-`, `_` and `.`."
        ) from None
    if create_pr and revision not in (None, constants.DEFAULT_REVISION):
        raise ValueError(
            f"`{names['create_pr']}` opens a pull request against main, so it cannot go with `{names['revision']}` "
            f"{revision!r}: drop one of them."
        )
    if constants.is_offline_mode():
        raise ValueError(
            "HF_HUB_OFFLINE=1 is set, so huggingface_hub refuses every request and nothing can be pushed. Unset it "
            f"(`HF_HUB_OFFLINE=0`) to push, or use `{names['dry_run']}` to write the folder and model card only."
        )
    token = token or get_token()
    if not token:
        raise ValueError(
            "No Hugging Face token found: log in with `hf auth login`, or set the HF_TOKEN environment variable to a "
            "token with write access (https://huggingface.co/settings/tokens)."
        )
    return token


def assemble(
    source: PublishSource,
    folder: Path,
    repo_id: str | None = None,
    *,
    license: str = DEFAULT_LICENSE,
    base_model: str | None = None,
    link: bool = False,
) -> list[str]:
    """Fill `folder` with the export's files, the loss plot and the model card; returns the files (relative).

    Args:
        link: hard-link the files instead of copying them where possible (for a temporary folder: a kept
            folder must not change when the export is overwritten in place).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.folder.rglob("*")):
        relative = path.relative_to(source.folder)
        # Hidden files (locks, caches) and an existing card (replaced by ours) stay behind.
        if (
            not path.is_file()
            or any(part.startswith(".") for part in relative.parts)
            or relative == Path(CARD_FILE)
        ):
            continue
        _place(path, folder / relative, link)
    plot = source.loss_plot
    if plot is not None and not (folder / LOSS_PLOT).exists():
        _place(plot, folder / LOSS_PLOT, link)
    card = build_model_card(
        source,
        repo_id,
        license=license,
        base_model=base_model,
        loss_plot=LOSS_PLOT if plot is not None else None,
    )
    card.save(folder / CARD_FILE)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _place(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copy2(source, target)


def _output_folder(source: PublishSource, out_dir: str | os.PathLike | None) -> Path:
    """The folder a dry run (or an explicit `out_dir`) assembles into, emptied when it is mmfm's default."""
    if out_dir is not None:
        folder = Path(out_dir).expanduser()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ValueError(
                f"`--out` {str(out_dir)!r} exists and is not an empty folder: choose a new folder (it is created) or "
                "empty it first."
            )
        return folder
    if source.run_dir is not None:
        folder = source.run_dir / PUBLISH_DIR
        if source.folder.parent.name == "model" and source.task:
            folder = folder / source.task
    else:
        folder = source.folder.with_name(f"{source.folder.name}-{PUBLISH_DIR}")
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _upload(
    result: PublishResult, repo_id: str, private: bool, revision: str | None, create_pr: bool, token: str,
    commit_message: str,
) -> PublishResult:  # fmt: skip
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision not in (None, constants.DEFAULT_REVISION):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=result.folder, commit_message=commit_message, revision=revision,
            create_pr=create_pr,
        )  # fmt: skip
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status in (401, 403):
            raise ValueError(
                f"The Hub at {api.endpoint} refused the token for {repo_id!r} ({status}): log in again with "
                "`hf auth login` or set HF_TOKEN to a token with write access to that namespace."
            ) from err
        raise
    result.repo_id, result.commit_url, result.pr_url = repo_id, info.commit_url, info.pr_url
    logger.info("Pushed %d files to %s: %s", len(result.files), repo_id, info.pr_url or info.commit_url)
    return result


def _commit_message(source: PublishSource) -> str:
    what = facts.architecture(source.config) or ("adapter" if source.adapter is not None else "model")
    steps = (source.metrics or {}).get("steps")
    return f"Upload {what} trained with mmfm" + (f" ({steps} steps)" if steps is not None else "")


def push_run(run_dir: str | os.PathLike, hub: Any) -> PublishResult:
    """The end of a run with `hub.push_to_hub`: publish the run folder as `hub.model_id` (main process only).

    Raises:
        RuntimeError: the push failed; the message says that the run is complete and how to push it again.
    """
    try:
        return publish(run_dir, hub.model_id, private=hub.private, revision=hub.revision, task=hub.task)
    except (ValueError, OSError, HfHubHTTPError) as err:
        again = f"mmfm-publish {run_dir} --repo-id {hub.model_id}" + (
            f" --task {hub.task}" if hub.task else ""
        )
        raise RuntimeError(
            f"The run is complete in {run_dir}, but pushing it to the Hub as {hub.model_id!r} failed: {err}\n"
            f"Push it again with: {again}"
        ) from err


__all__ = [
    "CLI_NAMES",
    "CONFIG_NAMES",
    "PublishResult",
    "assemble",
    "check_push_settings",
    "publish",
    "push_run",
]
