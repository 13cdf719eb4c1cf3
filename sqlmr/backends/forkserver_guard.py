"""Imported (preloaded) by the fork server of a local pool: make it die with
the driver that started it.

A fork server's workers have the fork server as their parent, so their
``PR_SET_PDEATHSIG`` fires only when it exits; left alone it lingers after a
SIGKILLed driver until its workers finish their tasks.  The driver names
itself in ``SQLMR_FORKSERVER_OF`` before the server starts; only the process
whose parent is that driver (the fork server) asks for SIGKILL at its
parent's death, so importing this module anywhere else does nothing.
"""

from __future__ import annotations

import os

ENV = "SQLMR_FORKSERVER_OF"


def _guard() -> None:
    if os.environ.get(ENV) != str(os.getppid()):
        return
    from sqlmr.backends.local import _set_parent_death_signal
    _set_parent_death_signal()
    if os.getppid() != int(os.environ[ENV]):  # the driver died before prctl
        os._exit(1)


_guard()
