import pytest

from assets.core.selection import NotMaterialized, pick_datasets

AVAILABLE = ["bach_chorales", "lmd", "monteverdi"]


def test_requested_datasets_win_when_they_all_exist():
    assert pick_datasets("part_notes", ["lmd"], AVAILABLE, ["bach_chorales"], AVAILABLE[:1]) == ["lmd"]


def test_without_a_request_the_available_defaults_then_the_fallback_are_used():
    assert pick_datasets("mmt_codes", [], AVAILABLE, ["monteverdi", "haydn_quartets"], AVAILABLE) == ["monteverdi"]
    assert pick_datasets("mmt_codes", [], AVAILABLE, ["haydn_quartets"], AVAILABLE) == AVAILABLE
    assert pick_datasets("part_notes", [], AVAILABLE, ["haydn_quartets"], AVAILABLE[:1]) == ["bach_chorales"]


def test_a_missing_dataset_or_nothing_at_all_says_what_to_materialize():
    with pytest.raises(NotMaterialized, match=r"mmt_codes not materialized for \['oneills'\]") as missing:
        pick_datasets("mmt_codes", ["lmd", "oneills"], AVAILABLE, [], AVAILABLE)
    assert missing.value.missing == ["oneills"]
    with pytest.raises(NotMaterialized, match="not materialized for any dataset"):
        pick_datasets("part_notes", [], [], ["bach_chorales"], [])
