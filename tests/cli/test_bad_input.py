"""Bad input on the command line, through the real `baton` console script: one line on stderr, exit
status 2, no traceback, and no folder the user did not ask for."""

import os
import subprocess
import sys
from pathlib import Path

import muspy
import numpy as np
import pytest
import soundfile as sf

BATON = str(Path(sys.executable).with_name("baton"))
REPO = str(Path(__file__).resolve().parents[2])


def baton_env(home: Path) -> dict[str, str]:
    """The environment of a user with a fresh home, running this checkout's code."""
    env = {**os.environ, "BATON_HOME": str(home), "PYTHONPATH": REPO}
    for setting in ("BATON_MLFLOW_URI", "BATON_DATASETS_URI", "BATON_CHECKPOINTS_URI", "BATON_EXECUTOR"):
        env.pop(setting, None)
    return env


@pytest.fixture
def files(tmp_path):
    """A real score, an empty WAV, a text file renamed .wav and a text file, in their own folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    notes = [muspy.Note(24 * i, 60 + i % 5, 24, 80) for i in range(8)]
    muspy.write_midi(folder / "solo.mid", muspy.Music(resolution=24, tracks=[muspy.Track(notes=notes)]))
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), 16_000)
    (folder / "text.wav").write_text("not audio at all\n")
    (folder / "notes.txt").write_text("not a picture\n")
    sf.write(folder / "mix.wav", np.zeros(16_000, np.float32), 16_000)
    return folder


def folders(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_dir()}


CASES = {
    "instrument into a missing folder": (["instrument", "IN/solo.mid", "NEW/dir/o.mid"], "does not exist"),
    "instrument --audio into a missing folder": (
        ["instrument", "IN/solo.mid", "IN/o.mid", "--audio", "NEW/o.wav"], "does not exist"),
    "separate an empty WAV": (["separate", "IN/empty.wav", "IN/o.wav", "--image", "IN/notes.txt"], "is not an image"),
    "separate an empty WAV with a text query": (["separate", "IN/empty.wav", "IN/o.wav", "--query", "violin"], "has no audio samples"),
    "separate a text file renamed .wav": (["separate", "IN/text.wav", "IN/o.wav", "--query", "violin"], "is not readable audio"),
    "separate with a text file as --image": (["separate", "IN/mix.wav", "IN/o.wav", "--image", "IN/notes.txt"],
                                             "IN/notes.txt is not an image"),
    "separate into a missing folder": (["separate", "IN/mix.wav", "NEW/o.wav", "--query", "violin"], "does not exist"),
    "synthesize with a text file as --image": (["synthesize", "IN/o.wav", "--image", "IN/notes.txt"], "IN/notes.txt is not an image"),
    "synthesize into a missing folder": (["synthesize", "NEW/o.wav", "--query", "violin"], "does not exist"),
    "datasets download of an unknown name": (["datasets", "download", "no_such_dataset"], "unknown dataset 'no_such_dataset'"),
    "clipsonic with missing CLIP weights": (["experiment", "--branch", "clipsonic", "--clip-model", "IN/no-clip"],
                                            "CLIP weights 'IN/no-clip' could not be loaded offline"),
    "clipsonic with missing CLAP weights": (["experiment", "--branch", "clipsonic", "--clip-model", "baton/small-clip",
                                             "--clap-model", "IN/no-clap"], "CLAP weights could not be loaded"),
    "clipsonic with a text file as VGGish weights": (["experiment", "--branch", "clipsonic", "--clip-model",
                                                      "baton/small-clip", "--vggish-weights", "IN/notes.txt"],
                                                     "could not be loaded"),
    "video with a CLIP id not in the cache": (["experiment", "--branch", "video", "--clip-model", "nobody/no-such-clip"],
                                              "CLIP weights 'nobody/no-such-clip' could not be loaded offline"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, files, tmp_path):
    args, message = CASES[case]
    new = tmp_path / "new"
    expand = lambda a: a.replace("IN", str(files)).replace("NEW", str(new))  # noqa: E731
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = baton_env(tmp_path / "home")
    before = folders(tmp_path) - folders(tmp_path / "home")
    done = subprocess.run([BATON, *map(expand, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert expand(message) in done.stderr and "Traceback" not in done.stderr
    after = folders(tmp_path) - folders(tmp_path / "home") - {tmp_path / "home"}
    assert after == before, after - before  # neither the missing folder nor anything else appeared
    assert not any(cwd.iterdir()) and not (files / "o.wav").exists() and not (files / "o.mid").exists()


def test_instrument_never_creates_a_folder_at_the_root(files, tmp_path):
    """The case as a user typed it: an output under a folder of the filesystem root that does not exist."""
    root = Path("/nonexistent")
    if root.exists():
        pytest.skip("/nonexistent exists on this machine")
    env = baton_env(tmp_path / "home")
    done = subprocess.run([BATON, "instrument", str(files / "solo.mid"), "/nonexistent/dir/o.mid"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and done.stderr == "error: /nonexistent/dir/o.mid: the folder /nonexistent/dir does not exist\n"
    assert not root.exists()
