"""Supervised fine-tuning of mmfm encoders, fully or with PEFT: the launcher of `mmfm.recipes.finetune` (read
it there).

    accelerate launch recipes/finetune.py                                  # the default recipe
    accelerate launch recipes/finetune.py --config vision finetune.peft.method=lora
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/finetune.py --config ...

Installed with pip, the same recipe is `mmfm-finetune` or `accelerate launch -m mmfm.recipes.finetune`.
"""

from mmfm.recipes.finetune import main

if __name__ == "__main__":
    main()
