"""Build the demo corpus from the command line.

    python -m mmfm.data.demo [--root DIR] [--modalities text vision ...] [--max-samples N] [--force]

Builds the missing demo subsets and prints a summary table: rows per split per subset, what was
found cached, and what was skipped and why.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .corpus import DEFAULT_SEED, DEMO_SUBSETS, build_demo_corpus


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mmfm.data.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", default=None, help="corpus root (default: $MMFM_DEMO_DIR or $MMFM_HOME/demo)"
    )
    parser.add_argument("--modalities", nargs="+", choices=list(DEMO_SUBSETS), default=None)
    parser.add_argument("--subsets", nargs="+", default=None, help="e.g. digits or vision/digits")
    parser.add_argument("--max-samples", type=int, default=None, help="cap on rows per subset (quick builds)")
    parser.add_argument("--force", action="store_true", help="rebuild subsets already on disk")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def format_summary(manifest: dict) -> str:
    """A plain-text table of the last build: one line per subset, then the tokenizer."""
    last = manifest["last_build"]
    status = {key: name for name in ("built", "cached", "skipped") for key in last[name]}
    lines = [f"{'subset':<28}{'status':<9}{'train':>8}{'test':>8}{'seconds':>9}  notes"]
    for key, state in status.items():
        entry = manifest["subsets"].get(key, {})
        rows = entry.get("rows", {}) if state != "skipped" else {}
        seconds = entry.get("build_seconds") if state == "built" else None
        note = manifest["skipped"][key] if state == "skipped" else "; ".join(entry.get("notes", []))
        lines.append(
            f"{key:<28}{state:<9}{rows.get('train', ''):>8}{rows.get('test', ''):>8}"
            f"{'' if seconds is None else f'{seconds:.1f}':>9}  {note}"
        )
    tokenizer = manifest.get("tokenizer")
    if tokenizer:
        lines.append(f"tokenizer: {tokenizer['model']}, vocab size {tokenizer['vocab_size']}")
    lines.append(f"root: {manifest['root']}  ({last['seconds']:.1f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    manifest = build_demo_corpus(
        root=args.root,
        modalities=args.modalities,
        subsets=args.subsets,
        max_samples=args.max_samples,
        force=args.force,
        progress=not args.no_progress,
        seed=args.seed,
    )
    print(format_summary(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
