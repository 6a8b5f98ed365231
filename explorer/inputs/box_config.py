"""The tuned default boxes a training run from the app uses: checked, then written for `--box-config`.

The Default boxes and Dataset pages share one `SSDConfig` (session state "tuned_cfg").
The Training page trains with it by writing it as the JSON that `python -m ssd.train
--box-config FILE` reads. The file lives under the runs folder, in `.box_configs/`
(a dot folder: the run listing skips it), named by a hash of its content, so a resumed
run finds it again and two configurations never share a file. No streamlit import.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from ssd.config import SSDConfig, check_fits, load_config_json
from ssd.io import write_json_atomic
from ssd.models import default_config

BOX_CONFIG_DIR = ".box_configs"  # under the runs folder


def write_for_training(cfg: SSDConfig, model_name: str, runs_dir: str | Path) -> Path:
    """Write `cfg` as an `SSDConfig.to_dict()` JSON for `ssd.train --model MODEL_NAME --box-config`.

    Args:
        cfg: the default boxes (any class count: training takes the dataset's).
        model_name: the model the run trains (`ssd.models.MODEL_NAMES`).
        runs_dir: the runs folder; the file goes to `runs_dir/.box_configs/<name>-<hash>.json`.
    Returns:
        The path of the file (written atomically; an existing one with the same content is kept).
    Raises:
        ValueError naming the problem when `cfg` does not fit the model: another input
        size, other feature maps or steps (`ssd.config.check_fits`), or an unknown model.
    """
    reference = dataclasses.replace(default_config(model_name), name=model_name)  # messages name the model
    check_fits(cfg, reference, f"the tuned configuration {cfg.name!r}")
    data = cfg.to_dict()
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    path = Path(runs_dir).expanduser().resolve() / BOX_CONFIG_DIR / f"{model_name}-{digest}.json"
    if not path.is_file():
        write_json_atomic(path, data)
    load_config_json(path, reference=reference)  # what the trainer will read: it must read back
    return path
