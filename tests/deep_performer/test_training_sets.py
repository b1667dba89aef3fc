import pyarrow.compute as pc
import pytest

from assets.deep_performer import training_sets
from assets.violin.clips import CLIP_SAMPLES
from models import deep_performer as dp


def test_both_splits_share_one_performer_vocabulary(clip_table):
    train = clip_table.filter(pc.field("performer") == "Anna")
    valid = clip_table.filter(pc.field("performer") == "Ben")
    performers, train_clips, valid_clips = training_sets.training_clips(train, valid)
    assert performers == ["Anna", "Ben"]
    assert {c.performer for c in train_clips} == {0} and {c.performer for c in valid_clips} == {1}
    assert len(train_clips) == train.num_rows and len(valid_clips) == valid.num_rows


@pytest.mark.parametrize(
    ("variant", "notewise_pe", "performer"), [("full", True, True), ("no_notewise_pe", False, True), ("no_performer", True, False)]
)
def test_each_variant_switches_off_its_ablation_only(variant, notewise_pe, performer):
    cfg = training_sets.variant_config(dp.PROFILES["smoke"], 7, variant)
    assert (cfg.n_performers, cfg.use_notewise_pe, cfg.use_performer) == (7, notewise_pe, performer)
    assert cfg.d_model == dp.PROFILES["smoke"].d_model


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="no_performer"):
        training_sets.variant_config(dp.PROFILES["smoke"], 2, "bigger")


def test_clip_audio_is_each_clips_recording(clip_table):
    audio = training_sets.clip_audio(clip_table.slice(0, 2))
    assert [len(a) for a in audio] == [CLIP_SAMPLES, CLIP_SAMPLES] and audio[0].std() > 0.05
