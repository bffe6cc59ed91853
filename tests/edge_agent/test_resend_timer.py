"""When unconfirmed rows are re-sent: only without watermark progress, backing off per round."""

from __future__ import annotations

from edge_agent.uplink import ResendTimer


def test_no_resend_while_the_watermark_moves() -> None:
    timer = ResendTimer(30.0, 240.0, now=0.0)
    for now in (10.0, 20.0, 29.0):
        timer.progress(now)
        assert timer.resend_before(now + 29.9) == 0.0
    assert timer.resend_before(29.0 + 30.0) == 29.0


def test_each_fruitless_round_doubles_the_wait_up_to_the_cap() -> None:
    timer = ResendTimer(30.0, 100.0, now=0.0)
    now, waits = 30.5, []
    for _ in range(5):
        assert timer.resend_before(now) > 0.0
        for batch in range(3):  # one round may go out in several batches
            timer.resent(now + batch * 0.01)
        waits.append(timer.timeout_s)
        now += timer.timeout_s
    assert waits == [60.0, 100.0, 100.0, 100.0, 100.0]


def test_progress_brings_the_base_timeout_back() -> None:
    timer = ResendTimer(30.0, 240.0, now=0.0)
    timer.resent(31.0)
    timer.resent(95.0)
    assert timer.timeout_s == 120.0
    timer.progress(100.0)
    assert timer.timeout_s == 30.0
    assert timer.resend_before(129.0) == 0.0
    assert timer.resend_before(131.0) == 101.0
