"""When unconfirmed rows are re-sent: only without watermark progress, in bounded rounds
(lowest seqs first), backing off per fruitless round."""

from __future__ import annotations

from edge_agent.uplink import ResendTimer


def test_no_resend_while_the_watermark_moves() -> None:
    timer = ResendTimer(30.0, 240.0, now=0.0)
    for now in (10.0, 20.0, 29.0):
        timer.progress(now)
        assert timer.allowance(now + 29.9) == (0.0, 0)
    assert timer.allowance(29.0 + 30.0) == (29.0, 200)


def test_each_fruitless_round_doubles_the_wait_up_to_the_cap() -> None:
    timer = ResendTimer(30.0, 100.0, now=0.0, window=50)
    now, waits = 30.5, []
    for _ in range(5):
        before, count = timer.allowance(now)
        assert (before, count) == (now - timer.timeout_s, 50)
        for batch in range(3):  # one round may go out in several batches
            timer.resent(now + batch * 0.01, 10)
        waits.append(timer.timeout_s)
        now += timer.timeout_s
    assert waits == [60.0, 100.0, 100.0, 100.0, 100.0]


def test_a_round_stops_at_its_window_until_the_next_is_due() -> None:
    timer = ResendTimer(10.0, 10.0, now=0.0, window=300)
    sent = 0
    for step in range(10):  # batches of 200 while the round lasts
        _, count = timer.allowance(10.0 + step * 0.1)
        batch = min(200, count)
        if batch:
            timer.resent(10.0 + step * 0.1, batch)
        sent += batch
    assert sent == 300
    assert timer.allowance(19.9) == (0.0, 0)
    assert timer.allowance(20.0) == (10.0, 300)


def test_a_row_published_just_now_is_not_re_sent_when_a_round_falls_due() -> None:
    timer = ResendTimer(30.0, 30.0, now=0.0)  # an idle device: no watermark moves
    before, _ = timer.allowance(45.0)  # a row went out at 44.9, the first in a while
    assert before == 15.0 < 44.9


def test_progress_brings_the_base_timeout_back() -> None:
    timer = ResendTimer(30.0, 240.0, now=0.0)
    timer.resent(31.0, 1)
    timer.resent(95.0, 1)
    assert timer.timeout_s == 120.0
    timer.progress(100.0)
    assert timer.timeout_s == 30.0
    assert timer.allowance(129.0) == (0.0, 0)
    assert timer.allowance(131.0)[0] == 101.0
