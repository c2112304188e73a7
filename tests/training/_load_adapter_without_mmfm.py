"""Run in a fresh interpreter: load an adapter with a peft Auto class (`AutoPeftModelForSequenceClassification`
for text, `AutoPeftModel` for the other heads) and `trust_remote_code=True` while `import mmfm` is impossible,
and save its logits on the saved inputs.
Usage: python _load_adapter_without_mmfm.py ADAPTER INPUTS OUTPUT AUTO_PEFT_CLASS"""

import runpy
import sys
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))  # mmfm unimportable from here on

import peft
import torch

adapter, inputs, output, auto_peft_class = sys.argv[1:5]
model = getattr(peft, auto_peft_class).from_pretrained(adapter, trust_remote_code=True).eval()
if type(model.get_base_model()).__module__.startswith("mmfm"):
    raise SystemExit("the base model was loaded from mmfm, not from the exported code")
with torch.no_grad():
    torch.save(model(**torch.load(inputs)).logits, output)
