"""When unconfirmed rows are re-sent: only without watermark progress, in bounded rounds
(lowest seqs first), backing off per fruitless round, and at once after a watermark that
stops on the last copy."""

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
            timer.resent(now + batch * 0.01, 10, top_seq=batch * 10 + 9)
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
            timer.resent(10.0 + step * 0.1, batch, top_seq=sent + batch - 1)
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
    timer.resent(31.0, 1, top_seq=0)
    timer.resent(95.0, 1, top_seq=0)
    assert timer.timeout_s == 120.0
    timer.progress(100.0)
    assert timer.timeout_s == 30.0
    assert timer.allowance(129.0) == (0.0, 0)
    assert timer.allowance(131.0)[0] == 101.0


def test_a_watermark_on_the_last_copy_starts_the_next_round_at_once() -> None:
    """A broker restarted before the hub's ingest was back dropped seqs 1000-1999: each
    round's copies move the watermark exactly onto the last of them, so the rounds follow
    each other without waiting out the timeout (5 rounds in 5 s, not in 2.5 minutes)."""
    timer = ResendTimer(30.0, 240.0, now=0.0, window=200)
    lowest, now = 1000, 30.0
    while lowest < 2000:
        before, count = timer.allowance(now)
        assert (before, count) == (now - 30.0, 200), f"no round at {now}"
        timer.resent(now, count, top_seq=lowest + count - 1)
        lowest += count
        now += 1.0  # the copies' round trip through the hub
        timer.progress(now, watermark=lowest - 1)
    assert now == 35.0


def test_a_watermark_past_the_copies_waits_the_timeout() -> None:
    """The hub held the originals and was only behind: another round now would just add
    copies to its queue."""
    timer = ResendTimer(30.0, 240.0, now=0.0, window=200)
    timer.resent(30.0, 200, top_seq=1199)
    timer.progress(31.0, watermark=1500)
    assert timer.allowance(60.9) == (0.0, 0)
    assert timer.allowance(61.0) == (31.0, 200)


def test_a_watermark_inside_the_copies_waits_for_the_last_one() -> None:
    """The hub stores the copies in batches: a watermark among them says nothing yet; the
    one on the last copy does."""
    timer = ResendTimer(30.0, 240.0, now=0.0, window=200)
    timer.resent(30.0, 200, top_seq=1199)
    timer.progress(31.0, watermark=1100)
    assert timer.allowance(31.0) == (0.0, 0)
    timer.progress(31.5, watermark=1199)
    assert timer.allowance(31.5) == (1.5, 200)
