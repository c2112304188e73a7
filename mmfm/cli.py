"""`mmfm <command> ...`: one entry point for the console scripts, as `git`, `hf` and `accelerate` have.

    mmfm pretrain --config mae training.max_steps=2000     # = mmfm-pretrain
    mmfm finetune --config vision model.init_from=...      # = mmfm-finetune
    mmfm publish outputs/default --dry-run                 # = mmfm-publish
    mmfm demo-data                                         # = mmfm-demo-data

Each command is imported only when it runs, so `mmfm publish` does not load the training stack.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# command -> (module, function taking argv and returning an exit status, one line of help)
COMMANDS = {
    "pretrain": ("mmfm.recipes.pretrain", "cli", "self-supervised pretraining (mmfm-pretrain)"),
    "finetune": (
        "mmfm.recipes.finetune",
        "cli",
        "fine-tuning with a head, fully or with PEFT (mmfm-finetune)",
    ),
    "publish": ("mmfm.hub.__main__", "main", "push a run, model or adapter folder to the Hub (mmfm-publish)"),
    "demo-data": ("mmfm.data.demo.__main__", "main", "build the offline demo corpus (mmfm-demo-data)"),
}


def usage() -> str:
    lines = ["usage: mmfm <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
    lines += ["", "`mmfm <command> --help` lists each command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(
            f"mmfm: unknown command {command!r}; commands are {', '.join(COMMANDS)}.\n\n{usage()}",
            file=sys.stderr,
        )
        return 2
    module, function, _ = COMMANDS[command]
    entry = getattr(importlib.import_module(module), function)
    saved, sys.argv = sys.argv, [f"mmfm {command}", *rest]  # the name the command's parser shows in its usage
    try:
        if command in ("pretrain", "finetune"):
            return entry()  # the recipes read sys.argv, as under `accelerate launch`
        status = entry(rest)
        return status if isinstance(status, int) else 0
    finally:
        sys.argv = saved


if __name__ == "__main__":
    sys.exit(main())
