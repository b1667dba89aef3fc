import pyarrow as pa

from assets.core.rejects import Reject, rejects_table
from assets.violin import rejected
from storage import shards


def write_rejects(root: str, stage: str, partition: str, *rejects: Reject) -> None:
    shards.write_table(root, f"{stage}_rejects", partition, rejects_table(rejects))


def test_nothing_is_skipped_while_every_input_has_rows(tmp_path):
    assert rejected.skip_reason(str(tmp_path), "r1", {"recording_audio": pa.table({"id": ["r1"]})}) is None


def test_a_skip_names_the_empty_inputs_and_the_rejects_that_emptied_them(tmp_path):
    root = str(tmp_path)
    write_rejects(root, "recording_audio", "r1", Reject("bach-violin", "r1", "download", "HTTPError", "404"))
    write_rejects(root, "violin_scores", "r1")
    inputs = {"recording_audio": pa.table({"id": pa.array([], pa.string())}), "score_renders": pa.table({"id": ["r1"]})}
    assert rejected.skip_reason(root, "r1", inputs) == "no recording_audio for this recording (download: HTTPError: 404)"
    assert rejected.skip_reason(root, "r2", inputs) == "no recording_audio for this recording (empty upstream)"


def test_a_recording_rejected_at_two_stages_counts_once_with_its_first_failure(tmp_path):
    root = str(tmp_path)
    write_rejects(root, "recording_audio", "r1", Reject("bach-violin", "r1", "slice", "SilentAudio", "silent"))
    write_rejects(root, "score_renders", "r1", Reject("bach-violin", "r1", "render", "RenderError", "no audio"))
    write_rejects(root, "violin_scores", "r2", Reject("bach-violin", "r2", "score", "ScoreError", "no repeat"))
    write_rejects(root, "violin_scores", "r3")
    assert rejected.rejected_recordings(root) == {"r1": "slice: SilentAudio", "r2": "score: ScoreError"}
