"""Frame extraction: decoding every frame through ffmpeg's fps filter against seeking from keyframes.

Usage: .venv/bin/python bench/video_frames.py [--seconds 60] [--repeats 3] [--out results.json]

Clips are H.264 of ``--seconds`` at 640 x 360, 25 fps (ffmpeg's testsrc2) with an AAC tone, one with
a keyframe every 250 frames and one every 25, B-frames on (x264 defaults). Rows, each the median of
``--repeats`` runs after one warm-up, all producing 1 fps 224 x 224 JPEGs (quality 90):
  decode-all  the previous path: one ffmpeg decoding every frame, fps + scale + crop filters, raw RGB
              to a pipe, PIL JPEG;
  exact       ``extract_frames``: packet index, one seek per run of sampled frames, non-reference
              frames nobody needs skipped;
  keyframes   ``extract_frames(sampling="keyframes")``: keyframes alone are decoded.
The audio rows answer whether one ffmpeg pass for both outputs pays: ``extract_audio`` alone, the
decode-all command alone, and one command writing both (frames to a pipe, audio to a file).
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
from PIL import Image

from assets.videos.media import extract_audio, extract_frames

CHAIN = "setpts=PTS-STARTPTS,fps=1:round=up,scale=224:224:force_original_aspect_ratio=increase:flags=bicubic,crop=224:224"


def make_clip(path: Path, seconds: float, gop: int) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(gop), "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    return path


def _jpegs(raw: bytes) -> list[bytes]:
    out = []
    for frame in np.frombuffer(raw, np.uint8).reshape(-1, 224, 224, 3):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def decode_all(path: Path) -> list[bytes]:
    """The previous extraction: every frame decoded, the fps filter keeping one a second."""
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:v:0", "-vf", CHAIN, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:",
    ]  # fmt: skip
    return _jpegs(subprocess.run(command, check=True, capture_output=True, timeout=600).stdout)


def decode_all_with_audio(path: Path, audio: Path) -> list[bytes]:
    """The previous extraction and the 16 kHz mono soundtrack from one ffmpeg command."""
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path),
        "-map", "0:v:0", "-vf", CHAIN, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:",
        "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", "16000", str(audio),
    ]  # fmt: skip
    return _jpegs(subprocess.run(command, check=True, capture_output=True, timeout=600).stdout)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_paths(clip: Path, audio: Path, repeats: int) -> dict[str, float]:
    runs: dict[str, Callable[[], object]] = {
        "decode-all": lambda: decode_all(clip),
        "exact": lambda: extract_frames(clip),
        "keyframes": lambda: extract_frames(clip, sampling="keyframes"),
        "audio alone": lambda: extract_audio(clip),
        "decode-all + audio, one command": lambda: decode_all_with_audio(clip, audio),
    }
    return {name: median_seconds(run, repeats) for name, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {"machine": platform.processor() or platform.machine(), "seconds": args.seconds, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for gop in (250, 25):
            clip = make_clip(Path(tmp) / f"gop{gop}.mp4", args.seconds, gop)
            timed = time_paths(clip, Path(tmp) / "audio.f32", args.repeats)
            for name, seconds in timed.items():
                speedup = timed["decode-all"] / seconds if name in ("exact", "keyframes") else None
                row = {"gop": gop, "path": name, "seconds": round(seconds, 3), "speedup": speedup and round(speedup, 1)}
                results["rows"].append(row)
    print(f"{'GOP':>4}  {'path':<32} {'s':>7}  speed-up")
    for row in results["rows"]:
        speedup = f"{row['speedup']:.1f}x" if row["speedup"] else ""
        print(f"{row['gop']:>4}  {row['path']:<32} {row['seconds']:>7.3f}  {speedup}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
