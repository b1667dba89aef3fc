"""Both UIs in a real browser (Playwright driving Debian's chromium), as `baton ui` serves them over a home
with a small materialized lineage: the Dagster asset graph, a partition materialized by clicking through
the launch dialog, and in MLflow the training run, its metrics and the registered model's `champion` alias.

Screenshots of every step land in the test's folder (printed), and in $BATON_UI_SCREENSHOTS when set."""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import music21
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pipelines.definitions import build_defs
from storage import tracking
from storage.home import BatonHome

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable: apt-get install chromium")

BATON = str(Path(sys.executable).with_name("baton"))
REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(music21.__file__).parent / "corpus"
PARTITION = "incoming_chorales"
MODEL = f"music_lm-{PARTITION}"  # the language model trained on that partition (no baseline to beat)
START_S = 300  # for both servers to answer on a busy 2-core machine
STEP_MS = 120_000  # for one page or element
RUN_MS = 600_000  # for a run launched from the UI to finish
DEPLOYMENT_SETTINGS = ("BATON_DATASETS_URI", "BATON_CHECKPOINTS_URI", "BATON_MLFLOW_URI", "BATON_EXECUTOR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def materialize_lineage(home: BatonHome) -> None:
    """Ten chorales through the symbolic lineage and a smoke-profile language model, then the perplexity
    matrix, which promotes that model to `champion`: runs in the instance and MLflow store the UIs show."""
    folder = Path(home.raw, "incoming", "chorales")
    folder.mkdir(parents=True)
    for path in sorted(glob.glob(str(CORPUS / "bach" / "bwv2[0-9]*.mxl")))[:10]:
        shutil.copy(path, folder)
    defs = build_defs(home)
    with dg.DagsterInstance.from_config(home.dagster) as instance:
        instance.add_dynamic_partitions("datasets", [PARTITION])
        lm = {"ops": {"music_lm": {"config": {"profile": "smoke", "max_steps": 12}}}}
        assert defs.resolve_job_def("symbolic_dataset").execute_in_process(instance=instance, partition_key=PARTITION, run_config=lm).success
        assert defs.resolve_job_def("cross_dataset_perplexity_job").execute_in_process(instance=instance).success


def wait_for_banner(proc: subprocess.Popen, out: Path, err: Path) -> tuple[str, str]:
    """The Dagster and MLflow URLs of `baton ui`'s banner, which it prints once both servers answer."""
    deadline = time.monotonic() + START_S
    while not (match := re.search(r"^Dagster: (\S+)\s+MLflow: (\S+)", out.read_text(), re.M)):
        assert proc.poll() is None, f"baton ui exited with {proc.returncode}: {err.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no banner in {START_S} s: {err.read_text()[-2000:]}"
        time.sleep(1)
    return match.group(1), match.group(2)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`baton ui` on free ports over a fresh home with the lineage above; yields (home, Dagster URL, MLflow URL)."""
    root = tmp_path_factory.mktemp("browser")
    home = BatonHome(str(root / "home"))
    env = {**os.environ, "BATON_HOME": home.root, "DAGSTER_HOME": home.dagster}
    for setting in DEPLOYMENT_SETTINGS:
        env.pop(setting, None)  # a developer's deployment settings stay out of tests
    with pytest.MonkeyPatch.context() as mp:  # the lineage runs in this process, on the same home
        for key in ("BATON_HOME", "DAGSTER_HOME"):
            mp.setenv(key, env[key])
        for setting in DEPLOYMENT_SETTINGS:
            mp.delenv(setting, raising=False)
        home.ensure()
        materialize_lineage(home)
        out, err = root / "ui.out", root / "ui.err"
        argv = [BATON, "ui", "--dagster-port", str(free_port()), "--mlflow-port", str(free_port()), "--timeout", str(START_S)]
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=o, stderr=e)
        try:
            dagster_url, mlflow_url = wait_for_banner(proc, out, err)
            yield home, dagster_url, mlflow_url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    if target := os.environ.get("BATON_UI_SCREENSHOTS"):
        shutil.copytree(folder, target, dirs_exist_ok=True)
    print(f"\nscreenshots: {folder}" + (f" and {target}" if target else ""))


def new_page(browser: Browser) -> Page:
    """A page with generous timeouts that dismisses the first-visit notices covering the UIs (a newsletter
    form, the model registry's new-UI promotion) whenever they appear."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)
    page.add_locator_handler(page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click())
    page.add_locator_handler(
        page.get_by_role("dialog").filter(has_text="new Model Registry UI"), lambda: page.get_by_role("button", name="Try it now").click()
    )
    return page


@pytest.fixture
def page():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield new_page(browser)
        finally:
            browser.close()


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"))


def test_dagster_shows_the_lineage_and_materializes_a_partition_from_the_launch_dialog(ui, page, screenshots):
    home, dagster_url, _ = ui
    page.goto(dagster_url)
    page.get_by_role("link", name=re.compile(r"Lineage$")).click()
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    graph = page.locator("svg")
    for group in ("scores", "cross_dataset", "mmt", "violin", "videos"):
        expect(graph.get_by_text(group, exact=True)).to_be_visible()
    shot(page, screenshots, "01_global_lineage")

    page.get_by_role("textbox", name=re.compile("Search and filter")).fill("group:scores")
    page.keyboard.press("Enter")
    for asset in ("score_files", "songs", "notes", "notes_rejects", "dataset_stats"):
        expect(graph.get_by_text(asset, exact=True)).to_be_visible()
    shot(page, screenshots, "02_scores_assets")

    page.goto(f"{dagster_url}/assets/dataset_stats")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    page.get_by_role("button", name=re.compile("Materialize…")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize dataset_stats")).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(PARTITION)
    page.get_by_role("menuitem", name=PARTITION).click()
    dialog.get_by_text("Launch runs to materialize").click()  # closes the partition list
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    shot(page, screenshots, "03_launch_dialog")
    dialog.get_by_role("button", name="Launch 1 run").click()

    toast = page.get_by_text(re.compile(r"Launched run \w+"))
    expect(toast).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)
    expect(page.get_by_text(f"partition: {PARTITION}")).to_be_visible()
    expect(page.get_by_text("Success", exact=True)).to_be_visible(timeout=RUN_MS)
    shot(page, screenshots, "04_run_succeeded")

    with dg.DagsterInstance.from_config(home.dagster) as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == PARTITION
        event = instance.get_latest_materialization_event(dg.AssetKey("dataset_stats"))
        assert event.run_id == run_id and event.asset_materialization.partition == PARTITION


def test_mlflow_shows_the_training_run_its_metrics_and_the_champion(ui, page, screenshots):
    home, _, mlflow_url = ui
    uri = tracking.default_tracking_uri(home)
    champion = tracking.get_alias_version(uri, MODEL, "champion")
    assert champion is not None

    page.goto(mlflow_url)  # the banner's link: it must lead to the training runs, not to an empty GenAI view
    run_link = page.get_by_role("link", name=MODEL, exact=True)
    expect(run_link).to_be_visible()  # the runs list itself, without a click on the experiment
    shot(page, screenshots, "05_mlflow_runs")

    run_link.click()
    expect(page.get_by_text("test_perplexity", exact=True).first).to_be_visible()
    expect(page.get_by_text("train_loss", exact=True).first).to_be_visible()
    assert champion.run_id in page.content()
    shot(page, screenshots, "06_mlflow_run_metrics")

    page.goto(f"{mlflow_url.split('#')[0].rstrip('/')}/#/models")  # the registry; its sidebar link shows only in one view
    page.get_by_role("link", name=MODEL, exact=True).click()
    row = page.get_by_role("row").filter(has_text=f"Version {champion.version}")
    expect(row.get_by_text(re.compile(r"@\s*champion"))).to_be_visible()
    shot(page, screenshots, "07_mlflow_champion")
