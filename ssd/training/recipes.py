"""Named training recipes: `ssd.train --recipe NAME` (flags still override) and the
Training page's recipe picker. Each is a dict of `ssd.training.options.TrainOptions` fields;
the rest keep their defaults.

Letters: none. No torch import (the app's job manager reads this).
"""
from __future__ import annotations

RECIPES: dict[str, dict] = {
    # The paper's SSD300 on VOC07+12 (Sec. 3, 3.1): SGD, lr 1e-3, momentum 0.9 (ssd.training.engine's
    # SGD), weight decay 5e-4, batch 32, lr x0.1 after 2/3 and 5/6 of training (40k, 50k of
    # 60k iterations), the full SSD augmentation, an ImageNet VGG-16 backbone, no warmup.
    # 60k iterations x 32 images / 16,551 trainval images ~ 116 epochs.
    "ssd300_voc_paper": {
        "dataset": "voc", "classes": "voc", "model": "ssd300_vgg16", "backbone_weights": "imagenet",
        "optimizer": "sgd", "lr": 1e-3, "weight_decay": 5e-4, "batch_size": 32, "schedule": "step",
        "warmup_steps": 0, "augment": "ssd", "epochs": 116, "eval_every": 10,
    },
    # The shipped checkpoints/compact256_shapes.pt (README "The shipped model"), flag for flag.
    "compact256_shapes": {
        "dataset": "procedural", "train_size": 3000, "val_size": 200, "data_seed": 0, "model": "compact256",
        "epochs": 10, "batch_size": 32, "lr": 2e-3, "augment": "light", "warmup_steps": 50, "eval_every": 2,
        "log_every": 10, "threads": 1, "seed": 0,
    },
    # A quick CPU demo: a few hundred generated scenes, a couple of minutes on 2 cores.
    "cpu_demo": {
        "dataset": "procedural", "train_size": 256, "val_size": 32, "model": "compact256", "epochs": 3,
        "batch_size": 16, "lr": 2e-3, "augment": "light", "warmup_steps": 20, "eval_every": 3, "log_every": 5,
    },
}
