"""Imported (preloaded) by the fork server of a local pool: make it die with
the driver that started it.

A fork server's workers have the fork server as their parent, so their
``PR_SET_PDEATHSIG`` fires only when it exits; left alone it lingers after a
SIGKILLed driver until its workers finish their tasks.  The driver names
itself in ``SQLMR_FORKSERVER_OF`` before the server starts; only the process
whose parent is that driver and which runs the fork server's code asks for
SIGKILL at its parent's death, so importing this module anywhere else does
nothing; the driver unsets the variable once its server has started.
"""

from __future__ import annotations

import os
import sys

ENV = "SQLMR_FORKSERVER_OF"  # as sqlmr.backends.local.FORKSERVER_ENV


def _guard() -> None:
    # only in a fork server (started as `python -c "from multiprocessing.
    # forkserver import main; …"`) whose parent is the driver that named itself
    if (os.environ.get(ENV) != str(os.getppid()) or sys.argv[:1] != ["-c"]
            or "multiprocessing.forkserver" not in sys.modules):
        return
    from sqlmr.backends.local import _set_parent_death_signal
    _set_parent_death_signal()
    if os.getppid() != int(os.environ[ENV]):  # the driver died before prctl
        os._exit(1)


_guard()
