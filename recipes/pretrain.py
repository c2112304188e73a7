"""Self-supervised pretraining of mmfm encoders: the launcher of `mmfm.recipes.pretrain` (read it there).

    accelerate launch recipes/pretrain.py                                   # the embedded demo recipe
    accelerate launch recipes/pretrain.py --config recipes/configs/mae.yaml training.max_steps=2000
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/pretrain.py --config ...

Installed with pip, the same recipe is `mmfm-pretrain` or `accelerate launch -m mmfm.recipes.pretrain`.
"""

from mmfm.recipes.pretrain import main

if __name__ == "__main__":
    main()
