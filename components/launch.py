"""Run a training CLI through ``accelerate launch`` (one script: CPU here, GPUs on the cluster).

Used by the KFP training components (and handy by hand): picks the committed accelerate
config for the hardware that is actually there.
"""

from __future__ import annotations

import subprocess
import sys

from components.paths import project_root

CONFIG_DIR = project_root() / "configs" / "accelerate"


def accelerate_command(module: str, args: list[str], gpus: int | None = None) -> list[str]:
    """``accelerate launch`` argv for ``python -m module args``; GPUs counted if not given."""
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    if gpus > 1:
        config = ["--config_file", str(CONFIG_DIR / "gpu.yaml"), "--num_processes", str(gpus)]
    elif gpus == 1:
        config = ["--config_file", str(CONFIG_DIR / "gpu.yaml"), "--num_processes", "1"]
    else:
        config = ["--config_file", str(CONFIG_DIR / "cpu.yaml")]
    return [sys.executable, "-m", "accelerate.commands.launch", *config, "-m", module, *args]


def launch(module: str, args: list[str], gpus: int | None = None) -> None:
    """Run and wait; a non-zero exit raises (the KFP task then fails)."""
    subprocess.run(accelerate_command(module, args, gpus), check=True)
