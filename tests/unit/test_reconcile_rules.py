"""reconcile_rules.decide: every row of its table, and the rule behind
them all: a record in use is never removed but by its consumer's own
free."""
import itertools

import pytest

from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import reconcile_rules as rules

A, C, R = ledger_mod.ACTIVE, ledger_mod.CREATING, ledger_mod.REMOVING


def facts(state=A, same_boot=True, readable=True, present=True,
          parent_seen=True, in_use=True, wanted=True):
    return rules.Facts(state, same_boot, readable, present, parent_seen,
                       in_use, wanted)


@pytest.mark.parametrize('given, action', [
    # The parent could not be read: nothing is concluded.
    (facts(readable=False), rules.UNKNOWN),
    (facts(readable=False, in_use=False), rules.UNKNOWN),
    (facts(readable=False, state=R), rules.UNKNOWN),
    # Its consumer's free began, or it holds nothing here: freed.
    (facts(state=R), rules.REMOVE),
    (facts(in_use=False), rules.REMOVE),
    (facts(in_use=False, state=C), rules.REMOVE),
    # ... and already gone: the record goes (a create rolled back).
    (facts(in_use=False, present=False), rules.FORGET),
    (facts(state=R, present=False, parent_seen=False), rules.FORGET),
    (facts(in_use=False, state=C, present=False), rules.ROLL_BACK),
    (facts(in_use=False, state=C, present=False, parent_seen=False),
     rules.ROLL_BACK),
    # ... gone with its parent: nothing to look at, the record stays.
    (facts(in_use=False, present=False, parent_seen=False), rules.UNKNOWN),
    # In use: brought back, finished, or its parameters set again.
    (facts(present=False), rules.RECREATE),
    (facts(present=False, parent_seen=False), rules.RECREATE),
    (facts(state=C), rules.REALIZE),
    (facts(state=C, present=False), rules.REALIZE),
    (facts(same_boot=False), rules.REAPPLY),
    (facts(), rules.NOTHING),
])
def test_each_row(given, action):
    assert rules.decide(given) == rules.Decision(action)


def test_a_record_in_use_but_not_wanted_is_kept_whatever_else_holds():
    for action, given in ((rules.NOTHING, facts(wanted=False)),
                          (rules.RECREATE, facts(wanted=False,
                                                 present=False)),
                          (rules.REAPPLY, facts(wanted=False,
                                                same_boot=False))):
        assert rules.decide(given) == rules.Decision(action, kept=True)
    # Not in use: nothing to keep it for.
    assert rules.decide(facts(wanted=False, in_use=False)) == \
        rules.Decision(rules.REMOVE)


def test_in_use_is_never_removed_nor_forgotten():
    """Over every combination of facts: a record whose consumer holds an
    allocation for it, and did not begin freeing it, is never removed,
    forgotten or rolled back."""
    for values in itertools.product((A, C), *[(True, False)] * 5):
        state, same_boot, readable, present, parent_seen, wanted = values
        decision = rules.decide(facts(state, same_boot, readable, present,
                                      parent_seen, True, wanted))
        assert decision.action not in (rules.REMOVE, rules.FORGET,
                                       rules.ROLL_BACK), values
