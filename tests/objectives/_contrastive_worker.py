"""The process body of the 2-process contrastive tests, and the small model they train.

Light on purpose: it loads `mmfm/models/mmfm_contrastive.py` by path, as a published checkpoint's remote
code is loaded, so the spawned processes import torch only (not mmfm or transformers, seconds each) and
check that the module needs nothing else.
"""

import datetime
import importlib.util
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

_PATH = Path(__file__).resolve().parents[2] / "mmfm" / "models" / "mmfm_contrastive.py"
_spec = importlib.util.spec_from_file_location("standalone_mmfm_contrastive", _PATH)
contrastive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contrastive)

WORLD, LOCAL = 2, 4  # processes, rows per process


class Towers(nn.Module):
    """Two linear towers and a learned log scale and bias, seeded identically in every process."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.tower_a = nn.Linear(6, 4, dtype=torch.float64)
        self.tower_b = nn.Linear(5, 4, dtype=torch.float64)
        self.log_scale = nn.Parameter(torch.tensor(contrastive.CLIP_LOGIT_SCALE_INIT, dtype=torch.float64))
        # A mild bias, so that SigLIP's negatives carry gradients well above the tolerance.
        self.bias = nn.Parameter(torch.tensor(-1.0, dtype=torch.float64))

    def loss(self, x_a, x_b, kind: str, form: str) -> torch.Tensor:
        """form: "gather" (local loss over gathered columns), "local" (local negatives only), "full"."""
        a = nn.functional.normalize(self.tower_a(x_a), dim=-1)
        b = nn.functional.normalize(self.tower_b(x_b), dim=-1)
        scale = self.log_scale.clamp(max=contrastive.LOGIT_SCALE_MAX).exp()
        if kind == "clip":
            if form == "full":
                return contrastive.clip_loss_full(a, b, scale)
            return contrastive.clip_loss(a, b, scale, gather=form == "gather")
        if form == "full":
            return contrastive.siglip_loss_full(a, b, scale, self.bias)
        return contrastive.siglip_loss(a, b, scale, self.bias, gather=form == "gather")


def batch():
    """The global batch: (WORLD * LOCAL, 6) and (WORLD * LOCAL, 5) paired inputs."""
    generator = torch.Generator().manual_seed(1)
    x_a = torch.randn(WORLD * LOCAL, 6, generator=generator, dtype=torch.float64)
    x_b = torch.randn(WORLD * LOCAL, 5, generator=generator, dtype=torch.float64)
    return x_a, x_b


def loss_and_grads(model: Towers, x_a, x_b, kind: str, form: str, average: bool = False):
    """The loss and every parameter's gradient; `average`: their mean over processes, as DDP does."""
    model.zero_grad(set_to_none=True)
    loss = model.loss(x_a, x_b, kind, form)
    loss.backward()
    loss = loss.detach().clone()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    if average:
        for tensor in (loss, *grads.values()):
            dist.all_reduce(tensor)
            tensor /= WORLD
    return loss, grads


def worker(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=30))  # fmt: skip
    try:
        results = {
            "modules": sorted(name for name in sys.modules if name.split(".")[0] in {"mmfm", "transformers"})
        }
        # gather_with_grad: rows in rank order, this rank's offset, and each row's gradient summed over
        # every process's loss and returned to the process that owns the row.
        x = torch.full((LOCAL, 3), float(rank), dtype=torch.float64, requires_grad=True)
        gathered, offset = contrastive.gather_with_grad(x)
        weights = torch.arange(WORLD * LOCAL * 3, dtype=torch.float64).reshape(WORLD * LOCAL, 3)
        ((rank + 1) * weights * gathered).sum().backward()
        results["gather"] = (gathered.detach(), offset, x.grad)
        try:
            contrastive.gather_with_grad(torch.zeros(LOCAL + rank, 3))
        except ValueError as error:
            results["unequal"] = str(error)
        model = Towers()
        x_a, x_b = batch()
        rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
        for kind in ("clip", "siglip"):
            for form in ("gather", "local"):
                results[kind, form] = loss_and_grads(model, x_a[rows], x_b[rows], kind, form, average=True)
        torch.save(results, f"{folder}/rank{rank}.pt")
        dist.barrier()  # neither process tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()
    # Skip interpreter finalisation: once `torch.distributed.nn` (and with it `torch.distributed.rpc`) is
    # imported, a gloo process aborts at exit now and then (torch 2.13: "terminate called without an
    # active exception", about 1 run in 15), after its work is done and saved.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
