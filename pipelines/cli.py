"""The `baton` command: the demo, the UIs, dataset management and the symbolic experiment."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from storage.home import BatonHome

DEMO_DATASETS = ("bach_chorales", "monteverdi", "trecento")
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # step events stay in the UI
INSTRUMENTATION_DATASETS = ("bach_chorales",)
DEMO_VIDEOS_PER_INSTRUMENT = 6
BRANCH_OF = {"perplexity": "muspy", "clipsep": "video"}  # report section -> the experiment that fills it
PAPER_DATASETS = ("bach_chorales", "monteverdi", "oneills", "palestrina", "ryans_mammoth", "trecento")


def instance_for(home: BatonHome):
    """The persistent Dagster instance under <home>/dagster, the same one `baton ui` shows."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = home.dagster
    return dg.DagsterInstance.get()


def add_partitions(home: BatonHome, datasets: list[str]) -> None:
    with instance_for(home) as instance:
        known = set(instance.get_dynamic_partitions("datasets"))
        instance.add_dynamic_partitions("datasets", [d for d in datasets if d not in known])


def run_experiment(home: BatonHome, datasets: list[str], profile: str, arch: str, steps: int | None = None) -> dict:
    """Every dataset through its lineage, then the combined models and the perplexity matrix."""
    add_partitions(home, datasets)
    lm = {"profile": profile, "arch": arch, **({f"{profile}_steps": steps} if steps else {})}
    results = {}
    for dataset in datasets:
        print(f"== {dataset}: score files -> notes -> event sequences -> music_lm ({profile})", flush=True)
        results[dataset] = run_job(home, "symbolic_dataset", dataset, {"music_lm": {"config": lm}})
    ok = [d for d in datasets if results[d]]
    for mode in ("all", "stratified"):
        print(f"== music_lm_combined[{mode}] over {', '.join(ok)}", flush=True)
        results[mode] = run_job(home, "music_lm_combined_job", mode, {"music_lm_combined": {"config": {**lm, "datasets": ok}}})
    print("== cross_dataset_perplexity", flush=True)
    results["cross_dataset_perplexity"] = run_job(
        home, "cross_dataset_perplexity_job", ops={"cross_dataset_perplexity": {"config": {"datasets": ok}}}
    )
    return results


def run_job(home: BatonHome, job: str, partition: str | None = None, ops: dict | None = None) -> bool:
    from pipelines.definitions import build_defs

    with instance_for(home) as instance:  # entered, so Dagster's context state points at this live instance
        result = build_defs(home).resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=partition, run_config={**QUIET, "ops": ops or {}}, raise_on_error=False
        )
    return result.success


def ingest(home: BatonHome, datasets: list[str]) -> dict:
    """Score files to notes for datasets not ingested yet (the branches below start from notes)."""
    from storage import shards

    add_partitions(home, datasets)
    results = {}
    for dataset in datasets:
        if shards.read_manifest(home.datasets, "notes", dataset) is None:
            print(f"== ingest {dataset}", flush=True)
            results[f"ingest[{dataset}]"] = run_job(home, "ingest_scores_job", dataset)
    return results


def run_mmt(home: BatonHome, datasets: list[str], profile: str, steps: int = 0) -> dict:
    """MMT codes for every dataset, then training, samples in the three modes and evaluation."""
    from assets.mmt.codes import DEFAULT_DATASETS

    results = {}
    for dataset in datasets:
        print(f"== mmt_codes[{dataset}]", flush=True)
        results[f"mmt_codes[{dataset}]"] = run_job(home, "mmt_codes_job", dataset)
    train_on = [d for d in datasets if d in DEFAULT_DATASETS and results[f"mmt_codes[{d}]"]]
    print(f"== mmt_model ({profile}) on {', '.join(train_on)} -> mmt_samples -> mmt_eval", flush=True)
    ops = {
        "mmt_model": {"config": {"profile": profile, "datasets": train_on, "max_steps": steps}},
        "mmt_samples": {"config": {"datasets": train_on}},
        "mmt_eval": {"config": {"datasets": train_on}},
    }
    results["mmt"] = run_job(home, "mmt_train_and_evaluate", ops=ops)
    return results


def run_instrumentation(home: BatonHome, datasets: list[str], profile: str, steps: int = 0, archs: list[str] | None = None) -> dict:
    """Part notes, every architecture, the Table 4.2 evaluation and example arrangements."""
    from models.part_separation import ARCHS

    results = {}
    for dataset in datasets:
        print(f"== part_notes[{dataset}]", flush=True)
        results[f"part_notes[{dataset}]"] = run_job(home, "part_notes_job", dataset)
    for arch in archs or ARCHS:
        print(f"== part_separation_model[{arch}] ({profile}) on {', '.join(datasets)}", flush=True)
        config = {"profile": profile, "datasets": datasets, "max_steps": steps}
        results[f"part_separation_model[{arch}]"] = run_job(home, "part_separation_train", arch, {"part_separation_model": {"config": config}})
    print("== part_separation_eval -> instrumentation", flush=True)
    ops = {"part_separation_eval": {"config": {"datasets": datasets}}, "instrumentation": {"config": {"datasets": datasets}}}
    results["part_separation_eval"] = run_job(home, "instrumentation_eval", ops=ops)
    return results


def run_performance_data(home: BatonHome, manifest: str | None = None, method: str = "v2") -> dict[str, bool]:
    """A violin manifest (default: the shared sample) read into `recordings` partitions, every recording
    from audio and score to aligned clips, then the reject-rate gate over all of them."""
    import pyarrow.compute as pc

    from storage import shards
    from storage.io_manager import UNPARTITIONED

    manifest = manifest or "sample"
    print(f"== recordings from {manifest}", flush=True)
    config = {"manifest": manifest, "download": True}  # download: only the release, when not unpacked yet
    results = {"recordings": run_job(home, "violin_recordings_job", ops={"recordings": {"config": config}})}
    if not results["recordings"]:
        return results
    table = shards.read_table(home.datasets, "recordings", UNPARTITIONED, ["id"], filter=pc.field("manifest") == manifest)
    for recording in table.column("id").to_pylist():
        print(f"== {recording}: audio, score -> rendering -> alignment ({method}) -> clips", flush=True)
        results[recording] = run_job(home, "violin_data_job", recording, {"alignments": {"config": {"method": method}}})
    print("== violin_reject_rate", flush=True)
    results["violin_reject_rate"] = run_job(home, "violin_reject_rate_job")
    return results


def run_performance(
    home: BatonHome, profile: str, steps: int = 0, manifest: str | None = None, method: str = "v2", vocoder_profile: str | None = None
) -> dict:
    """The violin recordings to clips, the Deep Performer's models (the three Table 5.1 variants) and their
    evaluation. ``vocoder_profile`` "none" leaves HiFi-GAN out (Griffin-Lim inverts), for CPU-only paper runs."""
    from assets.deep_performer.defs import VARIANTS

    results = run_performance_data(home, manifest, method)
    config = {"config": {"profile": profile, "max_steps": steps}}
    print(f"== performance_alignment_model ({profile})", flush=True)
    results["performance_alignment_model"] = run_job(home, "performance_alignment_train", ops={"performance_alignment_model": config})
    vocoder_profile = vocoder_profile or profile
    if vocoder_profile != "none":
        print(f"== performance_vocoder ({vocoder_profile})", flush=True)
        vocoder = {"config": {"profile": vocoder_profile, "max_steps": steps if vocoder_profile == profile else 0}}
        results["performance_vocoder"] = run_job(home, "performance_vocoder_train", ops={"performance_vocoder": vocoder})
    for variant in VARIANTS:
        print(f"== performance_synthesis_model[{variant}] ({profile})", flush=True)
        results[f"performance_synthesis_model[{variant}]"] = run_job(
            home, "performance_synthesis_train", variant, {"performance_synthesis_model": config}
        )
    print("== performance_eval", flush=True)
    results["performance_eval"] = run_job(home, "performance_eval_job")
    return results


def run_video_data(home: BatonHome, source: str = "synthetic", batch: str = "synthetic", model: str | None = None,
                   per_instrument: int = 4, seconds: float = 10.0) -> dict:
    """One video batch (default: the generated instrument set) to audio, frames and CLIP embeddings."""
    from models.clip_embed import DEFAULT_MODEL

    with instance_for(home) as instance:
        if batch not in instance.get_dynamic_partitions("video_batches"):
            instance.add_dynamic_partitions("video_batches", [batch])
    print(f"== video batch {batch}: videos ({source or 'its folder'}) -> audio, frames -> CLIP embeddings", flush=True)
    ops = {
        "videos": {"config": {"source": source, "per_instrument": per_instrument, "seconds": seconds}},
        "clip_embeddings": {"config": {"model": model or DEFAULT_MODEL}},
    }
    return {f"video_data[{batch}]": run_job(home, "video_data_job", batch, ops)}


def run_video(home: BatonHome, profile: str, steps: int = 0, source: str = "synthetic", batch: str = "synthetic",
              model: str | None = None, per_instrument: int = 4, methods: list[str] | None = None,
              n_mixtures: int = 100) -> dict:
    """A video batch to embeddings, the CLIPSep models (CLIPSep, CLIPSep-NIT, PIT) and their SDR evaluation."""
    from models.clipsep import METHODS

    results = run_video_data(home, source, batch, model, per_instrument)
    config = {"clipsep_model": {"config": {"profile": profile, "max_steps": steps}}}
    for method in methods or METHODS:
        print(f"== clipsep_model[{method}] ({profile})", flush=True)
        results[f"clipsep_model[{method}]"] = run_job(home, "clipsep_train", method, config)
    print("== clipsep_eval", flush=True)
    results["clipsep_eval"] = run_job(home, "clipsep_eval_job", ops={"clipsep_eval": {"config": {"n_mixtures": n_mixtures}}})
    return results


def cmd_demo(args: argparse.Namespace) -> int:
    from models.clip_embed import SMALL_CLIP
    from assets.core.tools import require_tools

    require_tools()
    home = BatonHome.from_env().ensure()
    datasets = list(args.datasets or DEMO_DATASETS)
    results = run_experiment(home, datasets, "smoke", "lstm")
    results |= run_mmt(home, datasets, "smoke")
    results |= run_instrumentation(home, [d for d in datasets if d == "bach_chorales"] or datasets[:1], "smoke")
    results |= run_performance(home, "smoke")
    results |= run_video(home, "demo", model=SMALL_CLIP, per_instrument=DEMO_VIDEOS_PER_INSTRUMENT)
    print_summary(home, results)
    return 0 if all(results.values()) else 1


def cmd_experiment(args: argparse.Namespace) -> int:
    """The MusPy cross-dataset experiment, or the MMT or instrumentation experiment on ingested datasets."""
    home = BatonHome.from_env().ensure()
    if args.branch == "muspy":
        results = run_experiment(home, list(args.datasets or PAPER_DATASETS), args.profile, args.arch, args.steps)
    elif args.branch == "mmt":
        from assets.mmt.codes import DEFAULT_DATASETS

        datasets = list(args.datasets or DEFAULT_DATASETS)
        results = ingest(home, datasets) | run_mmt(home, datasets, args.profile, args.steps or 0)
    elif args.branch == "video":
        results = run_video(home, args.profile, args.steps or 0, args.source, args.batch, args.clip_model, args.per_instrument)
    elif args.branch == "performance":
        results = run_performance(home, args.profile, args.steps or 0, args.manifest, args.method, args.vocoder_profile)
    else:
        datasets = list(args.datasets or INSTRUMENTATION_DATASETS)
        results = ingest(home, datasets) | run_instrumentation(home, datasets, args.profile, args.steps or 0, args.archs)
    print_summary(home, results)
    return 0 if all(results.values()) else 1


def print_summary(home: BatonHome, results: dict) -> None:
    from storage.tracking import MlflowResource, default_tracking_uri, latest_run_url

    ui = MlflowResource.model_fields["ui_url"].default
    run = latest_run_url(default_tracking_uri(home), "baton", "cross_dataset_perplexity", ui)
    print("\nResults:")
    for name, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(
        f"""
Where to look:
  Dagster UI and MLflow UI:  make ui   (Dagster http://127.0.0.1:3000, MLflow http://127.0.0.1:5000)
  Dataset plots:             {home.cache}/plots/dataset_stats/<dataset>/
  Cross-dataset heatmap:     {run or "no run yet"} (artifact cross_dataset_perplexity.png)
  Violin alignments:         {home.cache}/plots/alignments/<recording>.png
  Deep Performer samples:    {home.cache}/performance_eval/<run id>/ (recordings, resyntheses, spectrograms)
  CLIPSep examples:          {home.cache}/clipsep_eval/<run id>/ (mixtures, references, separations)
  Shard sets:                {home.datasets}/
  MLflow store:              {home.mlflow}/mlflow.db"""
    )


def cmd_ui(args: argparse.Namespace) -> int:
    from storage.tracking import default_tracking_uri

    home = BatonHome.from_env().ensure()
    env = {**os.environ, "DAGSTER_HOME": home.dagster, "BATON_HOME": home.root}
    bin_dir = os.path.dirname(sys.executable)
    procs = [
        subprocess.Popen([os.path.join(bin_dir, "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.dagster_port)], env=env),
        subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "ui", "--backend-store-uri", default_tracking_uri(home),
             "--default-artifact-root", f"{home.mlflow}/artifacts", "--host", "127.0.0.1", "--port", str(args.mlflow_port), "--workers", "1"],
            env=env,
        ),
    ]
    print(f"Dagster: http://127.0.0.1:{args.dagster_port}   MLflow: http://127.0.0.1:{args.mlflow_port}   (Ctrl-C stops both)")
    try:
        return max(p.wait() for p in procs)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from assets.scores import datasets

    home = BatonHome.from_env().ensure()
    if args.action == "list":
        for info in datasets.list_datasets(home.local_datasets):
            print(f"{info.name:22} {info.kind:8} {info.title}")
    elif args.action == "download":
        print(datasets.download(args.name, home.raw))
    elif args.action == "add-local":
        datasets.register_local(args.name, os.path.abspath(args.path), home.local_datasets)
        print(f"registered {args.name} -> {args.path}; materialize it with: baton experiment --datasets {args.name}")
    return 0


def cmd_instrument(args: argparse.Namespace) -> int:
    """Arrange a solo score for the parts of `models:/part_separation@<alias>`."""
    import muspy

    from assets.instrumentation.arrange import InstrumentationError, arrange
    from models import part_separation as ps
    from storage import tracking

    home = BatonHome.from_env().ensure()
    uri = tracking.default_tracking_uri(home)
    version = tracking.get_alias_version(uri, "part_separation", args.alias)
    if version is None:
        print(
            f"error: no model part_separation@{args.alias} in the registry at {uri}; train and evaluate one first "
            "(baton experiment --branch instrumentation, or materialize part_separation_model and part_separation_eval)",
            file=sys.stderr,
        )
        return 2
    try:
        music = muspy.read(args.input)
    except Exception as exc:  # muspy raises many types for unreadable files; the message is what matters
        print(f"error: cannot read {args.input}: {exc}", file=sys.stderr)
        return 2
    model_dir = tracking.fetch_version(uri, version, home.cache)
    model, cfg = ps.load_model(model_dir)
    try:
        arranged = arrange(music, model, cfg, version.tags["part_names"].split(","), version.tags.get("scheme", ""))
    except InstrumentationError as exc:
        print(f"error: {args.input}: {exc}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
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
    from models import vocoder as voc
    from models.mel import SAMPLE_RATE
    from storage import tracking

    home = BatonHome.from_env().ensure()
    uri = tracking.default_tracking_uri(home)
    versions = {name: tracking.get_alias_version(uri, name, args.alias) for name in (SYNTHESIS, ALIGNMENT, VOCODER)}
    missing = [name for name in (SYNTHESIS, ALIGNMENT) if versions[name] is None]
    if missing:
        print(
            f"error: no {' or '.join(f'{m}@{args.alias}' for m in missing)} in the registry at {uri}; train and evaluate "
            "them first (baton experiment --branch performance, or materialize the performance assets)",
            file=sys.stderr,
        )
        return 2
    dirs = {
        name: tracking.fetch_version(uri, v, home.cache)
        for name, v in versions.items() if v is not None
    }  # fmt: skip
    synthesis, cfg = dp.load_model(dirs[SYNTHESIS])
    alignment, _ = dp.load_model(dirs[ALIGNMENT])
    vocoder = voc.load_vocoder(dirs[VOCODER])[0] if VOCODER in dirs else None
    context = performing.read_context(dirs[SYNTHESIS])
    try:
        performer = performing.performer_index(context["performers"], args.performer)
        notes = score_notes(args.score)
    except (ValueError, ScoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    qpm = args.qpm or context["median_qpm"]
    mel, audio = performing.perform(notes, qpm, performer, synthesis, alignment, cfg, vocoder)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
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
    from storage import tracking

    home = BatonHome.from_env().ensure()
    uri = tracking.default_tracking_uri(home)
    version = tracking.get_alias_version(uri, "clipsep", args.alias)
    if version is None:
        print(f"error: no model clipsep@{args.alias} in the registry at {uri}; train and evaluate one first "
              "(baton experiment --branch video, or materialize clipsep_model and clipsep_eval)", file=sys.stderr)  # fmt: skip
        return 2
    if bool(args.query) == bool(args.image):
        print("error: give exactly one of --query TEXT and --image FILE", file=sys.stderr)
        return 2
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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model_dir = tracking.fetch_version(uri, version, home.cache)
    model, cfg = cs.load_model(model_dir)
    separated = cs.separate(model, mixture, query)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    sf.write(args.output, separated, cs.SAMPLE_RATE)
    what = f'"{args.query}"' if args.query else args.image
    print(f"{args.output}: {what} separated from {args.mixture} ({len(mixture) / cs.SAMPLE_RATE:.1f} s) "
          f"by clipsep v{version.version} ({cfg.method}, queries through {clip_model})")  # fmt: skip
    return 0


def report_clipsep(home: BatonHome) -> None:
    from assets.core.metadata import markdown_table
    from storage import shards

    print(markdown_table(shards.read_table(home.datasets, "clipsep_eval", "__all__").to_pandas(), digits=3))


def report_perplexity(home: BatonHome, png: str) -> None:
    from assets.cross_dataset.language_model import heatmap_png
    from assets.core.metadata import markdown_table
    from storage import shards

    long = shards.read_table(home.datasets, "cross_dataset_perplexity", "__all__").to_pandas()
    matrix = long.pivot(index="trained_on", columns="tested_on", values="perplexity")
    order = [c for c in matrix.columns] + [r for r in matrix.index if r not in matrix.columns]
    matrix = matrix.reindex(order)
    matrix.index.name, matrix.columns.name = "trained on", "tested on"
    write_png(png, heatmap_png(matrix))
    print(markdown_table(matrix.round(2).reset_index(), digits=4))
    print(f"\n![cross-dataset perplexity]({png})")


def report_instrumentation(home: BatonHome, png: str) -> None:
    """Table 4.2 from the latest part_separation_eval, and the champion's confusion matrix."""
    import mlflow

    from assets.core.metadata import markdown_table
    from storage import shards, tracking

    table = shards.read_table(home.datasets, "part_separation_eval", "__all__").to_pandas()
    print(markdown_table(table, digits=4))
    uri = tracking.default_tracking_uri(home)
    champion = tracking.get_alias_version(uri, "part_separation", "champion")
    run = tracking.latest_run(uri, "baton", "part_separation_eval")
    if run is not None and champion is not None:
        name = f"confusion_{champion.tags.get('arch')}.png"
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=name, tracking_uri=uri, dst_path=home.cache)
        with open(local, "rb") as f:
            write_png(png, f.read())
        print(f"\n![part separation confusion matrix]({png})")


def report_mmt(home: BatonHome) -> None:
    from assets.core.metadata import markdown_table
    from storage import shards

    table = shards.read_table(home.datasets, "mmt_eval", "__all__").to_pandas()
    columns = ["mode", *[c for c in table.columns if c.startswith(("generated_", "truth_"))], "notes_per_second"]
    print(markdown_table(table[columns], digits=3))


def report_performance(home: BatonHome) -> None:
    from assets.core.metadata import markdown_table
    from storage import shards

    print(markdown_table(shards.read_table(home.datasets, "performance_eval", "__all__").to_pandas(), digits=4))


def write_png(path: str, png: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(png)


def cmd_report(args: argparse.Namespace) -> int:
    """The README's result tables and figures, from the latest evaluation materializations."""
    from storage import shards

    home = BatonHome.from_env()
    sections = {
        "perplexity": ("cross_dataset_perplexity", lambda: report_perplexity(home, args.png)),
        "instrumentation": ("part_separation_eval", lambda: report_instrumentation(home, args.confusion_png)),
        "mmt": ("mmt_eval", lambda: report_mmt(home)),
        "performance": ("performance_eval", lambda: report_performance(home)),
        "clipsep": ("clipsep_eval", lambda: report_clipsep(home)),
    }
    chosen = list(sections) if args.section == "all" else [args.section]
    for name in chosen:
        asset, show = sections[name]
        print(f"### {name}\n")
        if shards.read_manifest(home.datasets, asset, "__all__") is None:
            print(f"(no {asset} yet: run `baton experiment --branch {BRANCH_OF.get(name, name)}`)\n")
            continue
        show()
        print()
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per model download drowns the output
    parser = argparse.ArgumentParser(prog="baton", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the default lineage on the embedded data (smoke profile)")
    demo.add_argument("--datasets", nargs="*")
    demo.set_defaults(func=cmd_demo)
    exp = sub.add_parser("experiment", help="the MusPy cross-dataset experiment")
    exp.add_argument("--datasets", nargs="*")
    exp.add_argument("--profile", default="paper", choices=["smoke", "demo", "paper"], help="demo: the video branch only")
    exp.add_argument("--branch", default="muspy", choices=["muspy", "mmt", "instrumentation", "performance", "video"],
                     help="muspy: cross-dataset perplexity; mmt: Multitrack Music Transformer; instrumentation: Table 4.2; "
                     "performance: Deep Performer, Table 5.1; video: CLIPSep")
    exp.add_argument("--arch", default="lstm", choices=["rnn", "lstm", "gru", "transformer"], help="muspy branch only")
    exp.add_argument("--archs", nargs="*", help="instrumentation branch: architectures to train (default: all four)")
    exp.add_argument("--steps", type=int, help="training steps per model (default: the profile's)")
    exp.add_argument("--manifest", help="performance branch: sample (default), release, or a Bach Violin Dataset info.csv")
    exp.add_argument("--method", default="v2", choices=["v1", "v2"], help="performance branch: alignment method")
    exp.add_argument("--source", default="synthetic", help="video branch: synthetic, a manifest CSV, a MUSIC or VGGSound index, a folder")
    exp.add_argument("--batch", default="synthetic", help="video branch: the video_batches partition to fill")
    exp.add_argument("--clip-model", help="video branch: CLIP id or folder (default openai/clip-vit-base-patch32; baton/small-clip offline)")
    exp.add_argument("--per-instrument", type=int, default=6, help="video branch: synthetic videos per instrument")
    exp.add_argument("--vocoder-profile", choices=["smoke", "paper", "none"],
                     help="performance branch: HiFi-GAN's profile (default: --profile; paper is meant for a GPU)")
    exp.set_defaults(func=cmd_experiment)
    ui = sub.add_parser("ui", help="Dagster and MLflow UIs on 127.0.0.1 over the same BATON_HOME")
    ui.add_argument("--dagster-port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)
    ds = sub.add_parser("datasets", help="list, download or add symbolic datasets")
    ds_sub = ds.add_subparsers(dest="action", required=True)
    ds_sub.add_parser("list")
    dl = ds_sub.add_parser("download")
    dl.add_argument("name")
    add = ds_sub.add_parser("add-local")
    add.add_argument("name")
    add.add_argument("path")
    ds.set_defaults(func=cmd_datasets)
    inst = sub.add_parser("instrument", help="arrange a solo (keyboard) score for several instruments")
    inst.add_argument("input", help="MIDI, MusicXML or another format muspy reads")
    inst.add_argument("output", help="the arranged MIDI file")
    inst.add_argument("--alias", default="champion", help="registry alias of part_separation to use")
    inst.add_argument("--audio", help="also render the arrangement to this WAV file")
    inst.set_defaults(func=cmd_instrument)
    perform = sub.add_parser("perform", help="play a score (MusicXML) with the registry's Deep Performer champions")
    perform.add_argument("score", help="MusicXML (or another format music21 reads) of a solo violin part")
    perform.add_argument("output", help="the WAV file to write (16 kHz mono)")
    perform.add_argument("--performer", default="0", help="performer name or index (the list is in the error of an unknown one)")
    perform.add_argument("--qpm", type=float, help="tempo in quarter notes per minute (default: the training median)")
    perform.add_argument("--alias", default="champion", help="registry alias of the models to use")
    perform.add_argument("--png", help="also write the synthesized log-mel spectrogram to this PNG")
    perform.set_defaults(func=cmd_perform)
    separate = sub.add_parser("separate", help="separate what a text or image query names from a mixture (CLIPSep)")
    separate.add_argument("mixture", help="audio file of the mixture (any format librosa reads)")
    separate.add_argument("output", help="the WAV file to write (16 kHz mono)")
    separate.add_argument("--query", help='text query, e.g. "violin" (needs real CLIP weights)')
    separate.add_argument("--image", help="image query: a picture of what to separate")
    separate.add_argument("--alias", default="champion", help="registry alias of clipsep to use")
    separate.set_defaults(func=cmd_separate)
    report = sub.add_parser("report", help="perplexity table (markdown) and heatmap PNG for the README")
    report.add_argument("--section", default="all", choices=["all", "perplexity", "instrumentation", "mmt", "performance", "clipsep"])
    report.add_argument("--png", default="docs/cross_dataset_perplexity.png")
    report.add_argument("--confusion-png", default="docs/part_separation_confusion.png")
    report.set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
