"""The loss duel of this browser session, for any page: is one running, and adding its runs.

The duel page keeps its ``DuelSetup`` in ``st.session_state[SETUP_KEY]``. When the duel's job
ends, ``finish_duel_if_done`` adds the three trained networks to the session's runs, whichever
page the learner is on. The draw page may call it, as the duel page does, so the networks
join its list without a visit back to the duel page.
"""

import streamlit as st

from engine.duel import DUEL_LOSSES
from ui.duel_logic import make_runs
from ui.runs import add_session_run, unique_run_name

SETUP_KEY = "duel-setup"


def current_duel():
    """Return this session's ``DuelSetup``, or None before the first duel."""
    return st.session_state.get(SETUP_KEY)


def duel_running():
    """Return whether this session has a duel that is queued, running or paused."""
    setup = current_duel()
    return setup is not None and setup.job is not None and not setup.job.done


def finish_duel_if_done(setup=None):
    """Add the three networks of an ended duel to the session's runs; return True if it did.

    Runs are added once per duel, named ``duel-ce``, ``duel-mse`` and ``duel-bce`` (with a
    number appended when the session already has that name). The cross-entropy run is selected.
    """
    setup = setup if setup is not None else current_duel()
    if setup is None:
        return False
    job = setup.job
    if job is None or not job.done or setup.run_ids or job.result is None:
        return False

    snapshot = job.snapshot()
    names = {loss: unique_run_name(f"duel-{loss}") for loss in DUEL_LOSSES}
    runs = make_runs(setup, snapshot, names)
    for loss in DUEL_LOSSES:
        add_session_run(runs[loss], select=loss == "ce")
        setup.run_ids[loss] = runs[loss].id
    return True
