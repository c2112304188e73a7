"""Publish a run, a model folder or a PEFT adapter folder to the Hugging Face Hub, with a model card:

    mmfm-publish outputs/default --repo-id me/clip-demo [--private] [--revision R] [--commit-message M]
        [--create-pr] [--task T] [--license L] [--base-model ID]
    mmfm-publish outputs/default --dry-run [--out DIR]     # write the folder and card; upload nothing

`python -m mmfm.hub` is the same command. The token is huggingface_hub's: HF_TOKEN or `hf auth login`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .card import DEFAULT_LICENSE
from .publish import PublishResult, publish


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmfm-publish", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Folders: a run folder (its model/ export, or model/<task> with --task), a model folder (config.json) "
        "or a PEFT adapter folder (adapter_config.json).",
    )  # fmt: skip
    parser.add_argument("source", help="a run folder, a model folder or a PEFT adapter folder")
    parser.add_argument(
        "--repo-id", default=None, help="the Hub repository, <user or org>/<name> (not needed with --dry-run)"
    )
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument(
        "--revision", default=None, help="the branch to push to (created when missing; default main)"
    )
    parser.add_argument("--commit-message", default=None, help="the commit's summary")
    parser.add_argument(
        "--create-pr", action="store_true", help="open a pull request instead of pushing to main"
    )
    parser.add_argument(
        "--task", default=None, help="the task to publish from a multi-task run (model/<task>)"
    )
    parser.add_argument("--dry-run", action="store_true", help="write the upload folder and model card only")
    parser.add_argument(
        "--out", default=None, help="the upload folder (new or empty; default: <run>/publish)"
    )
    parser.add_argument(
        "--license", default=DEFAULT_LICENSE, help=f"the card's license id (default {DEFAULT_LICENSE})"
    )
    parser.add_argument(
        "--base-model", default=None, help="the base model's Hub id, replacing a local folder"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `mmfm-publish` console script: 0 on success (a usage error exits 2, naming the option)."""
    run(argv)
    return 0


def run(argv: Sequence[str] | None = None) -> PublishResult:
    """Parse `argv`, publish (or write the dry-run folder), print what happened; returns the result."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = publish(
            args.source, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, create_pr=args.create_pr, dry_run=args.dry_run, out_dir=args.out,
            license=args.license, task=args.task, base_model=args.base_model,
        )  # fmt: skip
    except (ValueError, TypeError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.dry_run:
        print(
            f"Dry run: wrote {len(result.files)} files with the model card to {result.folder} (nothing uploaded):"
        )
        print("\n".join(f"  {name}" for name in result.files))
    else:
        print(f"Pushed {len(result.files)} files to {result.repo_id}: {result.pr_url or result.commit_url}")
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
