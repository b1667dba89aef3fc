import pytest

from assets.core.rejects import Reject, reject_rate, rejects_table


def test_reject_rate_is_the_rejected_share_and_zero_for_nothing_processed():
    assert reject_rate(1, 4) == pytest.approx(0.25)
    assert reject_rate(0, 0) == 0.0


def test_rejects_table_keeps_every_field():
    table = rejects_table([Reject("d", "a.mid", "read", "ValueError", "bad")])
    assert table.to_pylist() == [{"dataset": "d", "item": "a.mid", "stage": "read", "error_type": "ValueError", "message": "bad"}]
