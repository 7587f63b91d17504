"""Small helpers the benchmarks share."""

from __future__ import annotations

from pathlib import Path


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- photo sets: tune on one, report on the other ---------------------------------------------
# Parameters of detectors/ were chosen looking at the tuning set only. The held-out set is
# for the figures the README and reports quote: photos no parameter was chosen on.
TUNING_SCENE_SEEDS = (1, 2)
HELD_OUT_SCENE_SEEDS = (101, 102, 103)


def photo_set(which: str, *, scene_size: tuple[int, int] = (1600, 1200), scenes: bool = True) -> dict:
    """Named RGB photos of one set.

    ``tuning``: tests/support/transforms.photos() (tests/images and scikit-image samples:
    people, a cat, objects, a street, coins, the moon, a clock, microscopy, a retina, a star
    field) and synthetic scenes (tests/support/imagegen.scene) of seeds TUNING_SCENE_SEEDS.
    ``held-out``: synthetic scenes of other seeds (HELD_OUT_SCENE_SEEDS: other content of
    every kind: meadows, raindrops, flowers, pebbles, streets, leaves) and scikit-image's
    immunohistochemistry slide, which no other set uses as a photo.
    """
    import numpy as np
    from skimage import data

    from tests.support import imagegen
    from tests.support import transforms as tf

    if which == "tuning":
        out = tf.photos()
        seeds = TUNING_SCENE_SEEDS
    elif which == "held-out":
        out = {"ihc": np.ascontiguousarray(data.immunohistochemistry())}
        seeds = HELD_OUT_SCENE_SEEDS
    else:
        raise ValueError(f"unknown photo set {which!r}: tuning or held-out")
    if scenes:
        for seed in seeds:
            for kind in imagegen.SCENES:
                out[f"{kind}_{seed}"] = imagegen.scene(kind, seed, scene_size)
    return out


def telegram_config(tmp: Path, url: str, workers: int, pipeline: str = "") -> Path:
    """A quiet config for a Telegram bench against the Bot API emulator at ``url``; ``pipeline``:
    extra lines for the [pipeline] table."""
    path = tmp / "config.toml"
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp / "data"}"
log_level = "ERROR"
[telegram]
base_url = "{url}/bot"
base_file_url = "{url}/file/bot"
poll_timeout = 1
[pipeline]
workers = {workers}
{pipeline}
"""
    )
    return path
