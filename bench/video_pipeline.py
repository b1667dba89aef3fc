"""Videos to CLIP embeddings, frames per second of the whole path: the previous one against today's.

Usage: .venv/bin/python bench/video_pipeline.py [--videos 8] [--seconds 64] [--repeats 2] [--threads 2]
                                                [--out bench/results/video_pipeline.json]

``--videos`` copies of one H.264 clip (640 x 360, 25 fps, testsrc2 with an AAC tone, x264 defaults:
B-frames on), one set with a keyframe every 2 s and one every 10 s. Every path ends in unit-norm
embeddings of 1 fps 224 x 224 JPEGs (quality 90) by the built-in small CLIP (batch 64, fp32, CPU):
  before          per video in turn, ffmpeg decoding every frame through the fps filter, JPEG; then the
                  previous preprocessing (PIL images stacked, ``(x / 255 - mean) / std``) and the model;
  exact, 1 video  ``extract_frames`` (one seek per run of samples) one video at a time, ``embed_images``;
  exact           the same with ``each_video``'s one video per core, as ``video_frames`` runs it;
  keyframes       ``frame_sampling: keyframes`` (keyframes alone decoded), one video per core.
Stage rows split today's path: extraction alone, JPEG decode + preprocessing alone, the model alone.
The audio rows answer whether one PyAV pass for the soundtrack and the keyframes pays against
``extract_audio`` (ffmpeg) next to ``extract_frames``. Each row is the median of ``--repeats`` rounds
after one warm-up, every round running each path once in turn. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from video_frames import decode_all, make_clip  # the sibling bench: the previous extraction, its clips

from assets.videos import batches
from assets.videos.media import FRAME_SIZE, SAMPLE_RATE, extract_audio, extract_frames
from models.clip_embed import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, SMALL_CLIP, ClipBundle, embed_images, load_clip


def previous_embed(bundle: ClipBundle, jpegs: list[bytes], batch_size: int) -> np.ndarray:
    """The previous ``embed_images`` on CPU: a PIL image per frame, stacked, normalised in three passes."""
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(jpegs), batch_size):
        images = [Image.open(io.BytesIO(jpeg)).convert("RGB") for jpeg in jpegs[start : start + batch_size]]
        pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2)
        with torch.no_grad():
            features = bundle.model.get_image_features(pixel_values=(pixels.float() / 255 - mean) / std).pooler_output
        out.append(torch.nn.functional.normalize(features, dim=-1).numpy())
    return np.concatenate(out)


def one_pass_keyframes(path: Path) -> tuple[np.ndarray, int]:
    """One container open for both outputs: every audio packet decoded and resampled to 16 kHz mono,
    video packets demuxed in the same pass and only keyframes decoded (to RGB at 224 on the short side)."""
    with av.open(str(path)) as container:
        audio, video = container.streams.audio[0], container.streams.video[0]
        video.codec_context.skip_frame = "NONKEY"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        samples, pictures = [], []
        for packet in container.demux(audio, video):
            if packet.stream is audio:
                samples.extend(out.to_ndarray().ravel() for frame in packet.decode() for out in resampler.resample(frame))
            elif packet.is_keyframe or packet.size == 0:  # the empty packet at the end flushes the decoder
                pictures.extend(_rgb(frame) for frame in packet.decode())
        samples.extend(out.to_ndarray().ravel() for out in resampler.resample(None))
    return np.concatenate(samples), len(pictures)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    width = max((2 * FRAME_SIZE * frame.width + frame.height) // (2 * frame.height), FRAME_SIZE)
    return frame.reformat(width, FRAME_SIZE, "rgb24", interpolation="BICUBIC").to_ndarray()


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[object, float]]:
    """(what each run returned, its median seconds): one warm-up each, then ``repeats`` rounds that run
    every path once in turn, so a machine shared with other work loads all paths alike."""
    returned = {name: run() for name, run in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: (returned[name], statistics.median(times[name])) for name in runs}


def clip_set(folder: Path, videos: int, seconds: float, gop: int) -> list[dict]:
    first = make_clip(folder / f"gop{gop}-0.mp4", seconds, gop)
    paths = [first] + [Path(shutil.copyfile(first, folder / f"gop{gop}-{i}.mp4")) for i in range(1, videos)]
    return [{"id": path.stem, "path": str(path), "start": 0.0, "duration": None} for path in paths]


def paths_for(rows: list[dict], bundle: ClipBundle, batch: int) -> dict[str, Callable[[], int]]:
    """Each path: videos in, the number of embedded frames out."""

    def frames(sampling: str, workers: int | None) -> list[bytes]:
        done, rejects = batches.each_video(rows, "frames", lambda v: extract_frames(v["path"], sampling=sampling), workers)
        assert not rejects, rejects
        return [jpeg for _, extracted in done for _, jpeg in extracted]

    jpegs = frames("exact", None)
    return {
        "before: decode every frame (ffmpeg fps filter), previous preprocessing": lambda: len(
            previous_embed(bundle, [jpeg for v in rows for jpeg in decode_all(Path(v["path"]))], batch)
        ),
        "exact, 1 video at a time": lambda: len(embed_images(bundle, frames("exact", 1), batch, "fp32")),
        "exact, 1 video per core": lambda: len(embed_images(bundle, frames("exact", None), batch, "fp32")),
        "keyframes, 1 video per core": lambda: len(embed_images(bundle, frames("keyframes", None), batch, "fp32")),
        "stage: exact extraction alone, 1 video per core": lambda: len(frames("exact", None)),
        "stage: keyframes extraction alone, 1 video per core": lambda: len(frames("keyframes", None)),
        "stage: previous JPEG decode + preprocess + model": lambda: len(previous_embed(bundle, jpegs, batch)),
        "stage: JPEG decode + preprocess + model": lambda: len(embed_images(bundle, jpegs, batch, "fp32")),
    }


def audio_paths(rows: list[dict]) -> dict[str, Callable[[], object]]:
    return {
        "audio (ffmpeg) + keyframes (PyAV), two passes": lambda: (
            batches.each_video(rows, "audio", lambda v: extract_audio(v["path"])),
            batches.each_video(rows, "frames", lambda v: extract_frames(v["path"], sampling="keyframes")),
        ),
        "audio alone (ffmpeg)": lambda: batches.each_video(rows, "audio", lambda v: extract_audio(v["path"])),
        "audio + keyframes, one PyAV pass (no JPEG)": lambda: batches.in_parallel(lambda v: one_pass_keyframes(v["path"]), rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=64.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results/video_pipeline.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_clip(SMALL_CLIP, device="cpu")
    result = {
        "machine": platform.processor() or platform.machine(), "cores": batches.cores(), "threads": args.threads,
        "videos": args.videos, "seconds": args.seconds, "load_average": os.getloadavg(), "rows": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for gop in (50, 250):
            rows = clip_set(Path(tmp), args.videos, args.seconds, gop)
            for name, (counted, seconds) in interleaved_medians(paths_for(rows, bundle, args.batch_size), args.repeats).items():
                fps = round(counted / seconds, 1)
                result["rows"].append({"gop": gop, "path": name, "frames": counted, "seconds": round(seconds, 3), "frames_per_s": fps})
            for name, (_, seconds) in interleaved_medians(audio_paths(rows), args.repeats).items():
                result["rows"].append({"gop": gop, "path": name, "frames": None, "seconds": round(seconds, 3), "frames_per_s": None})
    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    before = {row["gop"]: row["seconds"] for row in result["rows"] if row["path"].startswith("before")}
    print("\n| keyframe every | path | frames | seconds | frames/s | speed-up |\n|---|---|---|---|---|---|")
    for row in result["rows"]:
        fps = f"{row['frames_per_s']:,.1f}" if row["frames_per_s"] else "—"
        speedup = f"{before[row['gop']] / row['seconds']:.1f}×" if row["frames"] and not row["path"].startswith("stage") else ""
        print(f"| {row['gop'] // 25} s | {row['path']} | {row['frames'] or '—'} | {row['seconds']:.3f} | {fps} | {speedup} |")
    print(f"\nwrote {args.out}")
    os._exit(0)


if __name__ == "__main__":
    main()
