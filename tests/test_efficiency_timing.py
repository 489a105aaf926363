"""Per-phase timing: sub-phases are named <phase>/<sub>, exclusive of nested sub-phases, no-ops without a timer."""

from __future__ import annotations

from rlvid.timing import PhaseTimer, active_timer, subphase


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_subphases_are_named_after_the_innermost_phase_and_exclusive():
    clock = FakeClock()
    timer = PhaseTimer(clock=clock)
    with timer("step"):
        with timer("gen"):
            clock.advance(1.0)
            with subphase("prefill"):
                clock.advance(2.0)
                with subphase("vision"):
                    clock.advance(4.0)
            with subphase("decode_tokens"):
                clock.advance(8.0)
        with timer("update_actor"), subphase("vision"):
            clock.advance(16.0)
    m = timer.metrics()
    assert m["time/gen"] == 15.0 and m["time/step"] == 31.0 and m["time/update_actor"] == 16.0
    assert m["time/gen/prefill"] == 2.0  # the nested vision sub-phase is not counted twice
    assert m["time/gen/vision"] == 4.0 and m["time/gen/decode_tokens"] == 8.0
    assert m["time/update_actor/vision"] == 16.0


def test_subphase_outside_a_phase_records_nothing():
    assert active_timer() is None
    with subphase("vision"):
        pass
    timer = PhaseTimer()
    with timer("gen"):
        assert active_timer() is timer
    assert active_timer() is None
    assert set(timer.metrics()) == {"time/gen"}


def test_split_form_used_by_forward_hooks_and_reset():
    clock = FakeClock()
    timer = PhaseTimer(clock=clock)
    with timer("gen"):
        opened = timer.enter_sub("prefill")
        clock.advance(3.0)
        timer.exit_sub(opened)
    assert timer.metrics()["time/gen/prefill"] == 3.0
    timer.reset()
    assert timer.metrics() == {}
