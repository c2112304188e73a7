"""Evaluate an exported binding model (`MMFMModel`) on the paired demo corpus, from the command line:

    python -m mmfm.evaluation outputs/bind/model --subsets shapes_captions digit_captions \
        --output outputs/bind/binding_eval.json

Prints one line per evaluated set (model, random initialisation, chance); `--output` writes the full report.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import torch

from ..data.paired import PAIRED_DEMO_SUBSETS
from .binding_demo import evaluate_binding_export, summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a folder an MMFMModel was saved to (e.g. outputs/default/model)")
    parser.add_argument(
        "--subsets", nargs="+", required=True, help=f"paired demo subsets: {sorted(PAIRED_DEMO_SUBSETS)}"
    )
    parser.add_argument("--output", default=None, help="write the report as JSON here")
    parser.add_argument("--max-length", type=int, default=64, help="longest text in tokens")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = evaluate_binding_export(
        args.model, args.subsets, device, args.max_length, output_path=args.output
    )
    for kind in ("retrieval", "zero_shot", "emergent"):
        for name, entry in report.get(kind, {}).items():
            print(f"{kind} {name}: {summary(entry)}")
    return report


if __name__ == "__main__":
    main()
