"""`baton instrument`, `perform` and `separate`: the registry's champions applied to your files.

Each looks its models up once (`get_alias_version`, then `fetch_version` into the cache) and loads
them with their model package's loader; a model file that is not a safe state dict is a one-line error.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TypeVar

from pipelines.cli.launch import UsageError, write_png
from storage.home import BatonHome

T = TypeVar("T")


def registered(home: BatonHome, names: tuple[str, ...], alias: str, hint: str, optional: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """`name@alias` of every name (and of the optional ones that exist): their versions and local folders."""
    from storage import tracking

    uri = tracking.default_tracking_uri(home)
    versions = {name: tracking.get_alias_version(uri, name, alias) for name in (*names, *optional)}
    missing = [name for name in names if versions[name] is None]
    if missing:
        what = f"model {missing[0]}@{alias}" if len(missing) == 1 else " or ".join(f"{m}@{alias}" for m in missing)
        raise UsageError(f"no {what} in the registry at {uri}; train and evaluate "
                         f"{'one' if len(missing) == 1 else 'them'} first ({hint})")  # fmt: skip
    versions = {name: v for name, v in versions.items() if v is not None}
    return versions, {name: tracking.fetch_version(uri, v, home.cache) for name, v in versions.items()}


def load(loader: Callable[[str], T], folder: str) -> T:
    """`loader(folder)`; a refused model file is a usage error naming the file (one line, status 2): the
    unpickler's traceback says nothing a user can act on."""
    from models.checkpoints import UnsafeModelFile

    try:
        return loader(folder)
    except UnsafeModelFile as exc:
        raise UsageError(str(exc)) from None


def output_folder(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def cmd_instrument(args: argparse.Namespace) -> int:
    """Arrange a solo score for the parts of `models:/part_separation@<alias>`."""
    import muspy

    from assets.instrumentation.arrange import InstrumentationError, arrange
    from models import part_separation as ps

    home = BatonHome.from_env().ensure()
    hint = "baton experiment --branch instrumentation, or materialize part_separation_model and part_separation_eval"
    versions, dirs = registered(home, ("part_separation",), args.alias, hint)
    version = versions["part_separation"]
    try:
        music = muspy.read(args.input)
    except Exception as exc:  # muspy raises many types for unreadable files; the message is what matters
        raise UsageError(f"cannot read {args.input}: {exc}") from None
    model, cfg = load(ps.load_model, dirs["part_separation"])
    try:
        arranged = arrange(music, model, cfg, version.tags["part_names"].split(","), version.tags.get("scheme", ""))
    except InstrumentationError as exc:
        raise UsageError(f"{args.input}: {exc}") from None
    output_folder(args.output)
    muspy.write_midi(args.output, arranged)
    print(f"{args.output}: part_separation v{version.version} ({version.tags.get('arch')})")
    for track in arranged.tracks:
        print(f"  {track.name:10} program {track.program:3}  {len(track.notes)} notes")
    if args.audio:
        from assets.core.synth import render_midi
        from assets.core.tools import require_tools, soundfont_path

        require_tools()
        render_midi(args.output, args.audio, soundfont_path())
        print(f"  audio: {args.audio}")
    return 0


def cmd_perform(args: argparse.Namespace) -> int:
    """Play a score with the registry's Deep Performer champions."""
    import soundfile as sf

    from assets.deep_performer import performing
    from assets.deep_performer.defs import ALIGNMENT, SYNTHESIS, VOCODER
    from assets.violin.scores import ScoreError, score_notes
    from models import deep_performer as dp
    from models.deep_performer import vocoder as voc
    from models.mel import SAMPLE_RATE

    home = BatonHome.from_env().ensure()
    hint = "baton experiment --branch performance, or materialize the performance assets"
    versions, dirs = registered(home, (SYNTHESIS, ALIGNMENT), args.alias, hint, optional=(VOCODER,))
    synthesis, cfg = load(dp.load_model, dirs[SYNTHESIS])
    alignment, _ = load(dp.load_model, dirs[ALIGNMENT])
    vocoder = load(voc.load_vocoder, dirs[VOCODER])[0] if VOCODER in dirs else None
    context = performing.read_context(dirs[SYNTHESIS])
    try:
        performer = performing.performer_index(context["performers"], args.performer)
        notes = score_notes(args.score)
    except (ValueError, ScoreError) as exc:
        raise UsageError(str(exc)) from None
    qpm = args.qpm or context["median_qpm"]
    mel, audio = performing.perform(notes, qpm, performer, synthesis, alignment, cfg, vocoder)
    output_folder(args.output)
    sf.write(args.output, audio, SAMPLE_RATE)
    inverse = f"{VOCODER} v{versions[VOCODER].version}" if vocoder is not None else "Griffin-Lim"
    print(
        f"{args.output}: {len(notes)} notes, {len(audio) / SAMPLE_RATE:.1f} s at {qpm:.0f} qpm, played as "
        f"{context['performers'][performer]} by {SYNTHESIS} v{versions[SYNTHESIS].version} and {ALIGNMENT} "
        f"v{versions[ALIGNMENT].version}, inverted by {inverse}"
    )
    if args.png:
        write_png(args.png, performing.spectrograms_png([(os.path.basename(args.score), mel)]))
        print(f"  spectrogram: {args.png}")
    return 0


def cmd_separate(args: argparse.Namespace) -> int:
    """Separate the source a text or image query names from a mixture, with `models:/clipsep@<alias>`."""
    import librosa
    import soundfile as sf

    from models import clip_embed
    from models import clipsep as cs

    home = BatonHome.from_env().ensure()
    hint = "baton experiment --branch video, or materialize clipsep_model and clipsep_eval"
    versions, dirs = registered(home, ("clipsep",), args.alias, hint)
    version = versions["clipsep"]
    if bool(args.query) == bool(args.image):
        raise UsageError("give exactly one of --query TEXT and --image FILE")
    clip_model = version.tags["clip_model"]
    try:
        bundle = clip_embed.load_clip(clip_model)
        if args.query and not bundle.semantic:
            raise ValueError(f"clipsep v{version.version} was trained on {clip_model}, which is not semantic: text "
                             "queries mean nothing to it; use --image, or train on real CLIP weights")  # fmt: skip
        if args.query:
            query = clip_embed.embed_texts(bundle, [args.query])[0]
        else:
            with open(args.image, "rb") as f:
                query = clip_embed.embed_images(bundle, [f.read()])[0]
        mixture, _ = librosa.load(args.mixture, sr=cs.SAMPLE_RATE, mono=True)
    except (clip_embed.ClipWeightsMissing, ValueError, OSError) as exc:  # OSError: unreadable mixture or image
        raise UsageError(str(exc)) from None
    model, cfg = load(cs.load_model, dirs["clipsep"])
    separated = cs.separate(model, mixture, query)
    output_folder(args.output)
    sf.write(args.output, separated, cs.SAMPLE_RATE)
    what = f'"{args.query}"' if args.query else args.image
    print(f"{args.output}: {what} separated from {args.mixture} ({len(mixture) / cs.SAMPLE_RATE:.1f} s) "
          f"by clipsep v{version.version} ({cfg.method}, queries through {clip_model})")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    inst = sub.add_parser(
        "instrument", help="arrange a solo (keyboard) score for several instruments",
        description="Splits the notes of a one-track score into the parts of models:/part_separation@ALIAS "
        "(automatic instrumentation) and writes them as a multi-track MIDI file.",
    )  # fmt: skip
    inst.add_argument("input", help="MIDI, MusicXML or another format muspy reads")
    inst.add_argument("output", help="the arranged MIDI file")
    inst.add_argument("--alias", default="champion", help="registry alias of part_separation to use")
    inst.add_argument("--audio", help="also render the arrangement to this WAV file (FluidSynth)")
    inst.set_defaults(func=cmd_instrument)
    perform = sub.add_parser(
        "perform", help="play a score (MusicXML) with the registry's Deep Performer models",
        description="Synthesizes a solo violin performance of a score with performance_synthesis@ALIAS and "
        "performance_alignment@ALIAS, inverted by the registered HiFi-GAN (else Griffin-Lim).",
    )  # fmt: skip
    perform.add_argument("score", help="MusicXML (or another format music21 reads) of a solo violin part")
    perform.add_argument("output", help="the WAV file to write (16 kHz mono)")
    perform.add_argument("--performer", default="0", help="performer name or index (the list is in the error of an unknown one)")
    perform.add_argument("--qpm", type=float, help="tempo in quarter notes per minute (default: the training median)")
    perform.add_argument("--alias", default="champion", help="registry alias of the models to use")
    perform.add_argument("--png", help="also write the synthesized log-mel spectrogram to this PNG")
    perform.set_defaults(func=cmd_perform)
    separate = sub.add_parser(
        "separate", help="separate what a text or image query names from a mixture (CLIPSep)",
        description="Separates the source a text query (real CLIP weights only) or an image query names from a "
        "mixture with models:/clipsep@ALIAS.",
    )  # fmt: skip
    separate.add_argument("mixture", help="audio file of the mixture (any format librosa reads)")
    separate.add_argument("output", help="the WAV file to write (16 kHz mono)")
    separate.add_argument("--query", help='text query, e.g. "violin" (needs real CLIP weights)')
    separate.add_argument("--image", help="image query: a picture of what to separate")
    separate.add_argument("--alias", default="champion", help="registry alias of clipsep to use")
    separate.set_defaults(func=cmd_separate)
