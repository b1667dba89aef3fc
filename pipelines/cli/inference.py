"""`baton instrument`, `perform`, `separate` and `synthesize`: the registry's champions applied to your files.

Each looks its models up once (`get_alias_version`, then `fetch_version` into the cache) and loads
them with their model package's loader; a model file that is not a safe state dict is a one-line error.
Where the champion rule held every model back (none beat the task's baseline), `instrument` and
`separate` run the baseline instead and say so in one line. Arguments are checked before torch and
the models are imported, so a mistake is answered at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from pipelines.cli.launch import UsageError, write_png
from storage.home import BatonHome

if TYPE_CHECKING:
    import numpy as np

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


def used(name: str, version, train: str) -> str:
    """`name vN (profile)`, the words every inference command prints for a model it used; a smoke-profile
    model also gets one warning line on stderr with the command `train` that makes a real one."""
    profile = version.tags.get("profile", "?")
    if profile == "smoke":
        print(f"warning: {name} v{version.version} is a smoke-profile model (a test of the wiring, not a model "
              f"worth hearing); train a real one with `{train}`", file=sys.stderr)  # fmt: skip
    return f"{name} v{version.version} ({profile} profile)"


def load(loader: Callable[[str], T], folder: str) -> T:
    """`loader(folder)`; a refused model file is a usage error naming the file (one line, status 2): the
    unpickler's traceback says nothing a user can act on."""
    from models.checkpoints import UnsafeModelFile

    try:
        return loader(folder)
    except UnsafeModelFile as exc:
        raise UsageError(str(exc)) from None


def output_folder(path: str) -> None:
    """Refuse an output whose folder does not exist: a mistyped path must not become a new folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: the folder {folder} does not exist")


def read_image(path: str) -> bytes:
    """The bytes of an image query, checked to be one Pillow reads."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            data = f.read()
        Image.open(io.BytesIO(data)).verify()
    except (UnidentifiedImageError, SyntaxError):  # before OSError, its base; SyntaxError: a corrupt PNG
        raise UsageError(f"{path} is not an image (PNG, JPEG or another format Pillow reads)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return data


def baseline_instead(home: BatonHome, name: str, alias: str, eval_run: str, fmt: Callable[[float], str], action: str) -> dict | None:
    """The baseline record when no model of `name` beat its baseline (see tracking.baseline_in_place),
    after one line on stderr saying so and what the command does instead; None when a model is to run."""
    from storage import tracking

    record = tracking.baseline_in_place(tracking.default_tracking_uri(home), "baton", name, alias, eval_run)
    if record is not None:
        print(f"note: {tracking.baseline_notice(name, record, fmt)}; {action}", file=sys.stderr)
    return record


def cmd_instrument(args: argparse.Namespace) -> int:
    """Arrange a solo score for the parts of `models:/part_separation@<alias>`."""
    for path in (args.output, args.audio):
        if path:
            output_folder(path)
    import muspy

    from assets.instrumentation.arrange import InstrumentationError, arrange

    try:
        music = muspy.read(args.input)
    except Exception as exc:  # muspy raises many types for unreadable files; the message is what matters
        raise UsageError(f"cannot read {args.input}: {exc}") from None
    home = BatonHome.from_env().ensure()
    by = instrument_arranger(home, args.alias)
    try:
        arranged = arrange(music, by)
    except InstrumentationError as exc:
        raise UsageError(f"{args.input}: {exc}") from None
    muspy.write_midi(args.output, arranged)
    print(f"{args.output}: arranged by {by.name}")
    for track in arranged.tracks:
        print(f"  {track.name:10} program {track.program:3}  {len(track.notes)} notes")
    if args.audio:
        from assets.core.synth import render_midi
        from assets.core.tools import require_tools, soundfont_path

        require_tools()
        render_midi(args.output, args.audio, soundfont_path())
        print(f"  audio: {args.audio}")
    return 0


def instrument_arranger(home: BatonHome, alias: str):
    """`part_separation@alias`, or the zone baseline part_separation_eval fitted when no model beat it."""
    from assets.instrumentation.arrange import model_arranger, zone_arranger
    from assets.instrumentation.evaluation import percent
    from models import part_separation as ps

    action = "arranged by the zone baseline"
    record = baseline_instead(home, "part_separation", alias, "part_separation_eval", percent, action)
    if record is not None:
        return zone_arranger(record)
    hint = "baton experiment --branch instrumentation, or materialize part_separation_model and part_separation_eval"
    versions, dirs = registered(home, ("part_separation",), alias, hint)
    version = versions["part_separation"]
    name = used("part_separation", version, "baton experiment --branch instrumentation --profile paper")
    model, cfg = load(ps.load_model, dirs["part_separation"])
    return model_arranger(model, cfg, version.tags["part_names"].split(","), version.tags.get("scheme", ""),
                          f"{name}, {version.tags.get('arch')}")  # fmt: skip


def cmd_perform(args: argparse.Namespace) -> int:
    """Play a score with the registry's Deep Performer champions, or with FluidSynth's violin while no
    synthesis model beats the aligned FluidSynth rendering; either way with its peak at -1 dBFS."""
    import math

    import soundfile as sf

    from assets.deep_performer import performing
    from assets.deep_performer.defs import SYNTHESIS
    from assets.violin.scores import ScoreError, score_notes
    from models.mel import SAMPLE_RATE

    if args.qpm is not None and not (math.isfinite(args.qpm) and args.qpm > 0):
        raise UsageError(f"--qpm must be a positive tempo in quarter notes per minute, got {args.qpm:g}")
    for path in (args.output, args.png):
        if path:
            output_folder(path)
    try:
        notes = score_notes(args.score)
    except ScoreError as exc:
        raise UsageError(str(exc)) from None
    home = BatonHome.from_env().ensure()
    action = "playing the score with FluidSynth's violin instead"
    record = baseline_instead(home, SYNTHESIS, args.alias, "performance_eval", lambda v: f"mel MSE {v:.3f}", action)
    if record is not None:
        qpm = args.qpm or record["median_qpm"]
        mel, audio, by = score_rendering(notes, qpm)
    else:
        mel, audio, qpm, by = model_performance(home, args, notes)
    try:
        audio = performing.at_peak(audio)
    except ValueError as exc:
        raise UsageError(f"{by} produced unusable audio ({exc}): the model diverged; train it again") from None
    sf.write(args.output, audio, SAMPLE_RATE)
    print(f"{args.output}: {len(notes)} notes, {len(audio) / SAMPLE_RATE:.1f} s at {qpm:.0f} qpm, {by}")
    if args.png:
        write_png(args.png, performing.spectrograms_png([(os.path.basename(args.score), mel)]))
        print(f"  spectrogram: {args.png}")
    return 0


def score_rendering(notes: np.ndarray, qpm: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Log-mel, audio and description of the score played by FluidSynth's violin at `qpm`."""
    from assets.core.tools import missing_tools, soundfont_path
    from assets.deep_performer import performing
    from models.mel import log_mel

    missing = missing_tools()
    if missing:
        raise UsageError(f"the FluidSynth rendering needs {' '.join(missing)} (apt-get install {' '.join(missing)})")
    audio = performing.render_score(notes, qpm, soundfont_path())
    return log_mel(audio), audio, f"played by FluidSynth's violin ({os.path.basename(soundfont_path())})"


def model_performance(
    home: BatonHome, args: argparse.Namespace, notes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Log-mel, audio, tempo and description of the score played by the Deep Performer models at `args.alias`."""
    from assets.deep_performer import performing
    from assets.deep_performer.defs import ALIGNMENT, SYNTHESIS, VOCODER
    from models import deep_performer as dp
    from models import vocoder as voc

    hint = "baton experiment --branch performance, or materialize the performance assets"
    versions, dirs = registered(home, (SYNTHESIS, ALIGNMENT), args.alias, hint, optional=(VOCODER,))
    synthesis, cfg = load(dp.load_model, dirs[SYNTHESIS])
    alignment, _ = load(dp.load_model, dirs[ALIGNMENT])
    vocoder = load(voc.load_vocoder, dirs[VOCODER])[0] if VOCODER in dirs else None
    context = performing.read_context(dirs[SYNTHESIS])
    try:
        performer = performing.performer_index(context["performers"], args.performer)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    qpm = args.qpm or context["median_qpm"]
    mel, audio = performing.perform(notes, qpm, performer, synthesis, alignment, cfg, vocoder)
    train = "baton experiment --branch performance --profile paper"
    inverse = used(VOCODER, versions[VOCODER], train) if vocoder is not None else "Griffin-Lim"
    models = f"{used(SYNTHESIS, versions[SYNTHESIS], train)} and {used(ALIGNMENT, versions[ALIGNMENT], train)}"
    return mel, audio, qpm, f"played as {context['performers'][performer]} by {models}, inverted by {inverse}"


def cmd_separate(args: argparse.Namespace) -> int:
    """Separate the source a text or image query names from a mixture, with `models:/clipsep@<alias>`
    (or write the mixture itself, the baseline, when no model beat it)."""
    if bool(args.query) == bool(args.image):
        raise UsageError("give exactly one of --query TEXT and --image FILE")
    output_folder(args.output)
    image = read_image(args.image) if args.image else None
    import soundfile as sf

    from assets.core.audio import MediaError, decode_audio
    from models import clipsep as cs

    try:
        mixture = decode_audio(args.mixture, sample_rate=cs.SAMPLE_RATE)
    except MediaError as exc:
        raise UsageError(str(exc)) from None
    if not len(mixture):
        raise UsageError(f"{args.mixture} has no audio samples")
    home = BatonHome.from_env().ensure()
    seconds = f"{len(mixture) / cs.SAMPLE_RATE:.1f} s"
    if baseline_instead(home, "clipsep", args.alias, "clipsep_eval", lambda v: f"{v:.2f} dB SDRi", "wrote the mixture unseparated"):
        sf.write(args.output, mixture, cs.SAMPLE_RATE)
        print(f"{args.output}: the mixture {args.mixture} ({seconds}), unseparated")
        return 0
    from models import clip_embed

    hint = "baton experiment --branch video, or materialize clipsep_model and clipsep_eval"
    versions, dirs = registered(home, ("clipsep",), args.alias, hint)
    version = versions["clipsep"]
    clip_model = version.tags["clip_model"]
    try:
        bundle = clip_embed.load_clip(clip_model)
    except clip_embed.ClipWeightsMissing as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    if args.query and not bundle.semantic:
        raise UsageError(f"clipsep v{version.version} was trained on {clip_model}, which is not semantic: text "
                         "queries mean nothing to it; use --image, or train on real CLIP weights")  # fmt: skip
    query = clip_embed.embed_texts(bundle, [args.query])[0] if args.query else clip_embed.embed_images(bundle, [image])[0]
    name = used("clipsep", version, "baton experiment --branch video --profile paper")
    model, cfg = load(cs.load_model, dirs["clipsep"])
    separated = cs.separate(model, mixture, query)
    sf.write(args.output, separated, cs.SAMPLE_RATE)
    what = f'"{args.query}"' if args.query else args.image
    print(f"{args.output}: {what} separated from {args.mixture} ({seconds}) "
          f"by {name} ({cfg.method}, queries through {clip_model})")  # fmt: skip
    return 0


def synthesis_query(args: argparse.Namespace, bundle, prior_dir: str | None, image: bytes | None):
    """The condition vector of the request: the `image`'s CLIP embedding, or the text's (zs) or the text's
    mapped to an image embedding by the registered (sd) or a pretrained (pd) prior."""
    from assets.clipsonic.sampling import PHOTO, prior_queries
    from models import clip_embed
    from models import clipsonic as cso

    if image is not None:
        return clip_embed.embed_images(bundle, [image])[0]
    if args.mode == "zs":
        if not bundle.semantic:
            raise UsageError(f"{bundle.model_id} is not semantic, so a zero-shot text query means nothing to it; "
                             "use --mode sd (the prior learned this dataset's labels) or --image")  # fmt: skip
        return clip_embed.embed_prompts(bundle, [PHOTO.format(args.query)])[0]
    folder = prior_dir if args.mode == "sd" else args.prior
    try:
        prior, _ = load(cso.load_prior, folder)
    except OSError as exc:
        raise UsageError(f"cannot load the prior {folder}: {exc.strerror or exc}") from None
    return prior_queries(prior, bundle, [args.query], args.seed)[0]


def cmd_synthesize(args: argparse.Namespace) -> int:
    """Text- or image-queried audio from `models:/clipsonic@<alias>` (CLIPSonic)."""
    if (args.query is None) == (args.image is None):
        raise UsageError("give exactly one of --query TEXT and --image FILE")
    if args.query is not None and not args.query.strip():
        raise UsageError("--query is empty: name the sound, e.g. --query violin")
    if args.image and args.mode:
        raise UsageError("--mode applies to text queries; an --image query is CLIPSonic-IQ")
    args.mode = args.mode or ("sd" if args.query is not None else "iq")
    if args.mode == "pd" and not args.prior:
        raise UsageError("--mode pd needs --prior DIR, a pretrained prior saved in Baton's prior layout")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.guidance is not None and args.guidance < 0:
        raise UsageError(f"--guidance must be 0 or more, got {args.guidance}")
    output_folder(args.output)
    image = read_image(args.image) if args.image else None
    import soundfile as sf

    from models import clip_embed
    from models import clipsonic as cso
    from models import vocoder as voc

    home = BatonHome.from_env().ensure()
    hint = "baton experiment --branch clipsonic, or materialize clipsonic_model[iq] and clipsonic_eval"
    needed = ("clipsonic", "clipsonic_prior") if args.mode == "sd" else ("clipsonic",)
    versions, dirs = registered(home, needed, args.alias, hint, optional=("clipsonic_vocoder",))
    version = versions["clipsonic"]
    try:
        bundle = clip_embed.load_clip(version.tags["clip_model"])
    except clip_embed.ClipWeightsMissing as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    condition = synthesis_query(args, bundle, dirs.get("clipsonic_prior"), image)
    known = versions["clipsonic_prior"].tags.get("labels", "").split(",") if args.mode == "sd" else []
    if args.mode == "sd" and not bundle.semantic and args.query not in known:
        print(f"warning: {bundle.model_id} is not semantic, so the prior answers only its dataset's labels "
              f"({', '.join(known)}); \"{args.query}\" is not one of them", file=sys.stderr)  # fmt: skip
    model, cfg = load(cso.load_model, dirs["clipsonic"])
    guidance = cfg.guidance if args.guidance is None else args.guidance
    steps = args.steps or (cfg.fast_steps if args.sampler == "ddim" else cfg.sample_steps)
    mel = cso.generate(model, condition[None], guidance, steps, args.sampler, args.seed)[0]
    vocoder = load(voc.load_vocoder, dirs["clipsonic_vocoder"])[0] if "clipsonic_vocoder" in dirs else None
    audio = voc.invert(mel, vocoder, cso.SPEC)
    sf.write(args.output, audio, cso.SPEC.sample_rate)
    what = f'"{args.query}" ({args.mode.upper()})' if args.query is not None else f"{args.image} (IQ)"
    train = "baton experiment --branch clipsonic --profile paper"
    by = ", ".join(used(name, versions[name], train) for name in versions if name != "clipsonic_vocoder" or vocoder is not None)
    inverse = "its vocoder" if vocoder is not None else "Griffin-Lim"
    print(f"{args.output}: {len(audio) / cso.SPEC.sample_rate:.1f} s for {what} by {by}, "
          f"{args.sampler} {steps} steps, w={guidance:g}, inverted by {inverse}")  # fmt: skip
    if version.tags.get("profile") != "smoke":
        warn_if_unheard(home, version)
    return 0


def warn_if_unheard(home: BatonHome, version) -> None:
    """One line when the evaluation found that the model's samples mostly do not sound like their query."""
    from storage import tracking

    accuracy = tracking.metric_of(tracking.default_tracking_uri(home), version, "test_domain_accuracy")
    if accuracy is not None and accuracy < 0.6:
        print(f"warning: on its test queries clipsonic v{version.version}'s samples sounded like the queried "
              f"instrument {accuracy:.0%} of the time (domain classifier); it needs longer training "
              "(`baton experiment --branch clipsonic --profile paper`, a GPU job)", file=sys.stderr)  # fmt: skip


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
        "performance_alignment@ALIAS, inverted by the registered HiFi-GAN (else Griffin-Lim). While no synthesis "
        "model beats the FluidSynth rendering of the score (performance_eval), it plays that rendering and says so. "
        "The WAV's peak is at -1 dBFS.",
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
    synth = sub.add_parser(
        "synthesize", help="text- or image-queried audio (CLIPSonic)",
        description="Generates 2 s of audio for a text query (through the prior, sd; or zero-shot, zs; or a "
        "pretrained prior, pd) or an image query with models:/clipsonic@ALIAS, inverted by clipsonic_vocoder@ALIAS "
        "when registered, else Griffin-Lim.",
    )  # fmt: skip
    synth.add_argument("output", help="the WAV file to write (16 kHz mono)")
    synth.add_argument("--query", help='text query, e.g. "violin"')
    synth.add_argument("--image", help="image query: a picture of what should sound")
    synth.add_argument("--mode", choices=["zs", "sd", "pd"], help="how a text query reaches the image space (default: sd)")
    synth.add_argument("--prior", help="pd: a pretrained prior folder")
    synth.add_argument("--guidance", type=float, help="classifier-free guidance scale w (default: the model's)")
    synth.add_argument("--steps", type=int, help="sampling steps (default: the model's, 1000 for ddpm)")
    synth.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"], help="fast DDIM or the 1,000-step DDPM")
    synth.add_argument("--seed", type=int, default=0, help="random seed of the sample")
    synth.add_argument("--alias", default="champion", help="registry alias of the models to use")
    synth.set_defaults(func=cmd_synthesize)
