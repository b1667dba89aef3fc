"""CLIP frame-embedding throughput: video decode + resize + embed, JPEG decode + preprocessing + embedding,
and each part alone.

Usage: .venv/bin/python bench/clip_embedding.py [--model baton/small-clip] [--device cpu|cuda]
                                                [--frames 512] [--batch-size 64] [--precision bf16]
                                                [--repeats 3] [--threads N]

Frames are synthetic 224×224 JPEGs (quality 90) like those video_frames stores: a smooth random
colour field with sensor-like noise, so the decoder sees realistic entropy. Rows: (a) the whole
``embed_images`` path, (b) the model alone on preprocessed pixels already on the device (forward
pass, autocast on CUDA), and the decode + preprocessing share for reference. Each is timed
``--repeats`` times after one warm-up batch; the median is reported. ``--model`` takes a real
checkpoint (model id in the Hugging Face cache or a saved folder). The video rows start from an
H.264 file of ``--frames`` seconds at 640×360, 25 fps (ffmpeg's testsrc2), cut to 1 fps 224² JPEGs
by ``video_frames``' own extraction and then embedded. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from assets.videos.media import extract_frames
from models.clip_embed import PRECISIONS, SMALL_CLIP, ClipBundle, embed_images, load_clip, preprocess


def synthetic_jpegs(n: int, seed: int = 0, size: int = 224) -> list[bytes]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(
            (size, size), Image.Resampling.BICUBIC
        )
        noisy = np.asarray(coarse).astype(np.int16) + rng.normal(0, 6, (size, size, 3)).astype(np.int16)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        frames.append(buffer.getvalue())
    return frames


def test_video(path: Path, seconds: int) -> Path:
    source = f"testsrc2=size=640x360:rate=25:duration={seconds}"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", str(path)]
    subprocess.run(command, check=True, timeout=600)
    return path


def median_seconds(run: Callable[[], None], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_only(bundle: ClipBundle, batches: list[torch.Tensor], precision: str) -> Callable[[], None]:
    dtype = PRECISIONS[precision]
    autocast = bundle.device.type == "cuda" and dtype is not None

    def run() -> None:
        with torch.no_grad(), torch.autocast(bundle.device.type, dtype=dtype, enabled=autocast):
            for pixels in batches:
                bundle.model.get_image_features(pixel_values=pixels)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SMALL_CLIP, help="model id, saved folder or baton/small-clip")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="bf16", choices=sorted(PRECISIONS), help="autocast dtype on CUDA")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch")
    parser.add_argument("--out", default="bench/results/clip_embedding.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    bundle = load_clip(args.model, device=args.device)
    jpegs = synthetic_jpegs(args.frames)
    chunks = [jpegs[i : i + args.batch_size] for i in range(0, len(jpegs), args.batch_size)]
    pixels = [preprocess(bundle, chunk).to(bundle.device) for chunk in chunks]
    embed_images(bundle, chunks[0], args.batch_size, args.precision)  # warm-up

    video = test_video(Path(tempfile.mkdtemp(prefix="clip-bench-")) / "video.mp4", args.frames)

    def video_to_embeddings() -> None:
        embed_images(bundle, [jpeg for _, jpeg in extract_frames(video)], args.batch_size, args.precision)

    stages = {
        "video decode + resize + crop + JPEG (ffmpeg, 1 fps)": lambda: extract_frames(video),
        "video decode + resize + embed (all of it)": video_to_embeddings,
        "JPEG decode + preprocess + embed": lambda: embed_images(bundle, jpegs, args.batch_size, args.precision),
        "embedding alone": model_only(bundle, pixels, args.precision),
        "JPEG decode + preprocess alone": lambda: [preprocess(bundle, chunk) for chunk in chunks],
    }
    rows = []
    for stage, run in stages.items():
        seconds = median_seconds(run, args.repeats, bundle.device)
        rows.append({"stage": stage, "frames": len(jpegs), "seconds": seconds, "frames_per_s": len(jpegs) / seconds})

    parameters = sum(p.numel() for p in bundle.model.vision_model.parameters())
    precision = args.precision if bundle.device.type == "cuda" else "fp32"
    result = {
        "model": args.model,
        "semantic": bundle.semantic,
        "vision_parameters": parameters,
        "device": bundle.device.type,
        "precision": precision,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if bundle.device.type == "cuda" else None,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))

    print(
        f"{args.model} ({parameters:,} vision parameters) on {bundle.device.type}, {precision}, "
        f"batch {args.batch_size}, {args.threads} threads"
    )
    print("\n| stage | frames | seconds | frames/s |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['stage']} | {row['frames']} | {row['seconds']:.3f} | {row['frames_per_s']:.1f} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
