"""The one reconcile schedule of the agent and nova-compute."""
from vgpu_placement.host import schedule


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_due_at_start_then_every_interval_after_the_last_that_finished():
    clock = Clock()
    plan = schedule.ReconcileSchedule(600, clock)
    assert plan.due()                   # never ran: at start
    plan.finished()
    clock.now += 599
    assert not plan.due()
    clock.now += 1
    assert plan.due()


def test_one_that_failed_is_due_again_at_the_next_chance():
    clock = Clock()
    plan = schedule.ReconcileSchedule(600, clock)
    plan.finished()
    clock.now += 600
    assert plan.due()
    # It failed: finished() was not called. The next chance, 60 s on:
    clock.now += 60
    assert plan.due()


def test_a_chance_a_little_early_still_counts():
    clock = Clock()
    plan = schedule.ReconcileSchedule(600, clock, early=30)
    plan.finished()
    clock.now += 569
    assert not plan.due()
    clock.now += 1
    assert plan.due()
