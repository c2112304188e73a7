"""Run in a fresh interpreter: build transformers pipelines on exported folders while `import mmfm` is
impossible (`trust_remote_code=True`), run each on its saved raw input, and save the answers.

Usage: python _pipelines_without_mmfm.py WORKDIR TASK:NAME...

For each argument, `pipeline(TASK, model=WORKDIR/NAME, trust_remote_code=True)` runs on the input pickled in
`WORKDIR/NAME_input.pt` (`torch.load(weights_only=False)`: a string, an image array or a waveform), and the
answer is stored in `WORKDIR/pipeline_outputs.json` under "TASK:NAME", or the error as {"error": "..."}.
"""

import json
import runpy
import sys
import traceback
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))  # mmfm unimportable from here on

import numpy as np
import torch
from transformers import pipeline


def _plain(value):
    """JSON-able copy of a pipeline answer (numpy scalars and arrays to Python)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


workdir, specs = sys.argv[1], sys.argv[2:]
if not specs:
    raise SystemExit(__doc__)
results = {}
for spec in specs:
    task, sep, name = spec.partition(":")
    if not sep:
        raise SystemExit(f"expected TASK:NAME, got {spec!r}")
    try:
        runner = pipeline(task, model=f"{workdir}/{name}", trust_remote_code=True)
        if type(runner.model).__module__.startswith("mmfm"):
            raise SystemExit(f"{spec} was loaded from mmfm, not from the exported code")
        raw = torch.load(f"{workdir}/{name}_input.pt", weights_only=False)
        if task == "image-classification":
            from PIL import Image

            raw = Image.fromarray(raw)
        results[spec] = {"answer": _plain(runner(raw)), "model_module": type(runner.model).__module__}
    except Exception as err:  # noqa: BLE001  (reported to the test, which decides what is expected)
        results[spec] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
with open(f"{workdir}/pipeline_outputs.json", "w") as handle:
    json.dump(results, handle)
