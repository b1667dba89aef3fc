"""CLIPSonic's HiFi-GAN on CPU: does a few minutes of the demo profile beat Griffin-Lim?

Usage: .venv/bin/python bench/clipsonic_vocoder.py [--profile demo] [--per-instrument 4] [--seconds 10]
       [--max-steps N] [--work DIR]
Renders the synthetic instruments' melodies with FluidSynth (assets/videos/synthetic.py; no video),
``--per-instrument`` training clips and one validation clip of each of the 8 instruments, trains the
profile on one thread per core of torch's default, and reports training steps/s, minutes, and the
validation resynthesis L1 of CLIPSonic's 64-band hop-512 log-mel for the HiFi-GAN and for Griffin-Lim.
A rerun with the same --work resumes the training run from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from assets.core.tools import require_tools, soundfont_path
from assets.videos.synthetic import INSTRUMENTS, render_audio, video_seed
from models import vocoder as voc
from models.mel import CLIPSONIC
from models.training import default_device


def render(per_instrument: int, seconds: float, dataset_seed: int) -> list[np.ndarray]:
    """``per_instrument`` seeded clips of every instrument, rendered in threads (FluidSynth subprocesses)."""
    require_tools()
    soundfont = soundfont_path()
    jobs = [(name, video_seed(dataset_seed, i)) for name in INSTRUMENTS for i in range(per_instrument)]
    with ThreadPoolExecutor() as pool:
        return list(pool.map(lambda job: render_audio(job[0], job[1], seconds, soundfont), jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=sorted(voc.CLIPSONIC_PROFILES))
    parser.add_argument("--per-instrument", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--work", default=None, help="checkpoint folder (default: a temporary one)")
    args = parser.parse_args()

    train_audio = render(args.per_instrument, args.seconds, dataset_seed=0)
    valid_audio = render(1, args.seconds / 2, dataset_seed=1)
    cfg = voc.CLIPSONIC_PROFILES[args.profile]
    if args.max_steps is not None:
        cfg = replace(cfg, max_steps=args.max_steps)
    print(f"train {sum(map(len, train_audio)) / 16000 / 60:.1f} min, valid {sum(map(len, valid_audio)) / 16000:.0f} s")

    griffin_lim = voc.resynthesis_l1(valid_audio, lambda mel: voc.griffin_lim(mel, CLIPSONIC), CLIPSONIC)
    print(f"griffin-lim val_mel_l1 {griffin_lim:.3f}", flush=True)
    history: list[tuple[int, float, float]] = []

    def log(metrics: dict[str, float], step: int) -> None:
        if "val_mel_l1" in metrics:
            history.append((step, time.perf_counter() - start, metrics["val_mel_l1"]))
            print(f"step {step:5d}  {history[-1][1] / 60:5.1f} min  val_mel_l1 {metrics['val_mel_l1']:.3f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="clipsonic-vocoder-") as tmp:
        start = time.perf_counter()
        _, result = voc.train_hifigan(cfg, train_audio, valid_audio, args.work or tmp, log, device=default_device())
        elapsed = time.perf_counter() - start
    trained = result.steps - (result.resumed_from or 0)
    print(json.dumps({
        "profile": args.profile, "steps": result.steps, "minutes": round(elapsed / 60, 2),
        "steps_per_s": round(trained / elapsed, 2), "hifigan_val_mel_l1": round(result.best_metric, 3),
        "griffin_lim_val_mel_l1": round(griffin_lim, 3), "beats_griffin_lim": result.best_metric < griffin_lim,
        "history": [(s, round(t / 60, 2), round(v, 3)) for s, t, v in history],
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
