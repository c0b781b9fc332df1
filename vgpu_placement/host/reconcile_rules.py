"""What reconcile does with one ledger record, decided from facts (pure).

Contract: ``decide(facts)`` returns a :class:`Decision`: the action for
the record and whether it is ``kept`` (its consumer holds an allocation
for it, but what the host reports now does not ask for it: a type taken
out of the config, or allocations the reading cannot tell apart; it
stays the consumer's, who alone may release it). The first row that
holds decides:

======== ========================== ====================== ===========
readable the record                 the host               action
======== ========================== ====================== ===========
no       any                        any                    UNKNOWN
yes      removing, or not in use    its mdev there         REMOVE
yes      removing, or not in use    gone; parent seen, or  FORGET
                                    the record not active  (ROLL_BACK
                                                           if creating)
yes      removing, or not in use    gone; parent not seen  UNKNOWN
yes      in use, active             gone                   RECREATE
yes      in use, creating           any                    REALIZE
yes      in use, active, older boot there                  REAPPLY
yes      in use, active, this boot  there                  NOTHING
======== ========================== ====================== ===========

"In use": its consumer holds an allocation on its provider. "Removing":
the consumer's own free began and did not finish. A record is never
removed while in use: only its consumer's free or release does that.
REAPPLY: brought back at boot by someone else (libvirt's autostart,
mdevctl): the operator's vendor parameters are set again (they are per
boot), and the record made active in this boot.
"""
import dataclasses

from vgpu_placement.host import ledger as ledger_mod

UNKNOWN = 'unknown'
REMOVE = 'remove'
FORGET = 'forget'
ROLL_BACK = 'roll_back'
RECREATE = 'recreate'
REALIZE = 'realize'
REAPPLY = 'reapply'
NOTHING = 'nothing'


@dataclasses.dataclass(frozen=True)
class Facts:
    state: str              # the record's ledger state
    same_boot: bool         # made active in this boot
    readable: bool          # its parent and device could be read now
    present: bool           # the host shows its mdev now
    parent_seen: bool       # the host shows its kernel parent now
    in_use: bool            # its consumer holds an allocation on its provider
    wanted: bool            # what the host reports now asks for it


@dataclasses.dataclass(frozen=True)
class Decision:
    action: str
    kept: bool = False


def decide(facts):
    """The Decision for one record (see the module's table)."""
    if not facts.readable:
        return Decision(UNKNOWN)
    active = facts.state == ledger_mod.ACTIVE
    if facts.state == ledger_mod.REMOVING or not facts.in_use:
        if facts.present:
            return Decision(REMOVE)
        if facts.parent_seen or not active:
            return Decision(ROLL_BACK if facts.state == ledger_mod.CREATING
                            else FORGET)
        return Decision(UNKNOWN)
    kept = not facts.wanted
    if not facts.present and active:
        return Decision(RECREATE, kept)
    if not facts.present or facts.state == ledger_mod.CREATING:
        return Decision(REALIZE, kept)
    if not facts.same_boot:
        return Decision(REAPPLY, kept)
    return Decision(NOTHING, kept)
