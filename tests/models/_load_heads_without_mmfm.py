"""Run in a fresh interpreter: load exported folders through named Auto classes with
`trust_remote_code=True` while `import mmfm` is impossible, run the saved inputs, and save the outputs.

Usage: python _load_heads_without_mmfm.py WORKDIR NAME:AutoClassName...

For each argument, loads `WORKDIR/NAME` with `transformers.<AutoClassName>`, runs it on the keyword
inputs saved in `WORKDIR/NAME_inputs.pt` (a dict, under `torch.no_grad()` in eval mode), and stores
every tensor field of the output (`loss`, the named `*_loss`, the logits, ...) in
`WORKDIR/remote_outputs.pt` under the key "NAME:AutoClassName", with the loaded class's module and name.
One folder may be loaded by several Auto classes (an MLM export by AutoModelForPreTraining and
AutoModelForMaskedLM). Objective-agnostic: reuse it for any registered objective's model.
"""

import runpy
import sys
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))  # mmfm unimportable from here on

import torch
import transformers

workdir, specs = sys.argv[1], sys.argv[2:]
if not specs:
    raise SystemExit(__doc__)
results = {}
for spec in specs:
    name, sep, auto_name = spec.partition(":")
    if not sep or not auto_name.startswith("Auto"):
        raise SystemExit(f"expected NAME:AutoClassName, got {spec!r}")
    auto_class = getattr(transformers, auto_name)
    model = auto_class.from_pretrained(f"{workdir}/{name}", trust_remote_code=True).eval()
    if type(model).__module__.startswith("mmfm"):
        raise SystemExit(f"{spec} was loaded from mmfm, not from the exported code")
    inputs = torch.load(f"{workdir}/{name}_inputs.pt")
    with torch.no_grad():
        output = model(**inputs)
    results[spec] = {
        "module": type(model).__module__,
        "class": type(model).__name__,
        "outputs": {key: value for key, value in output.items() if isinstance(value, torch.Tensor)},
    }
torch.save(results, f"{workdir}/remote_outputs.pt")
