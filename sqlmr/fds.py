"""File descriptors: how many connections the driver may hold at once.

Every synchronous Lambda invocation in flight holds one socket until its task
ends, and every result read in flight one more; a process refused a descriptor
(``EMFILE``) would fail requests instead of waiting.  So the driver sizes its
pools from ``RLIMIT_NOFILE``: the soft limit is first raised toward the hard
limit if that is what the pools want (any process may do that), then what
still does not fit is simply run with fewer connections at once — fewer in
flight, never a failed job.
"""

from __future__ import annotations

import os

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

# Descriptors kept for everything else: the S3 client's pool, result reads,
# files, pipes, the interpreter's own.
RESERVE_FDS = 64
# Descriptors one invocation slot may need at once: its Lambda connection, and
# an S3 connection when it removes a late attempt's output.
FDS_PER_SLOT = 2
UNLIMITED = 1 << 20


def open_fds() -> int:
    """Descriptors this process has open now (0 when the system cannot say)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return max(0, len(os.listdir(folder)) - 1)   # minus the listing's own
        except OSError:
            continue
    return 0


def soft_limit() -> int:
    """RLIMIT_NOFILE's soft limit (UNLIMITED when there is none)."""
    if resource is None:
        return UNLIMITED
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def raise_soft_limit(want: int) -> int:
    """Raise the soft limit to ``want`` (at most the hard limit) if it is lower;
    the soft limit after."""
    if resource is None:
        return UNLIMITED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft_limit()
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
    return soft_limit()


def slots_that_fit(want: int, limit: int, in_use: int, per_slot: int = FDS_PER_SLOT,
                   reserve: int = RESERVE_FDS) -> int:
    """How many connection slots of ``per_slot`` descriptors fit under ``limit``
    with ``in_use`` open and ``reserve`` kept: at most ``want``, at least 1.

    >>> slots_that_fit(1000, limit=256, in_use=20)
    86
    >>> slots_that_fit(1000, limit=65536, in_use=20)
    1000
    >>> slots_that_fit(1000, limit=64, in_use=60)     # nothing to spare: one at a time
    1
    """
    free = limit - in_use - reserve
    return max(1, min(want, free // per_slot))


def connection_slots(want: int, per_slot: int = FDS_PER_SLOT) -> int:
    """How many connections the driver may hold at once, out of ``want``: the
    soft limit raised as far as that needs (and the hard limit allows), then
    what fits (:func:`slots_that_fit`)."""
    in_use = open_fds()
    limit = raise_soft_limit(in_use + RESERVE_FDS + want * per_slot)
    return slots_that_fit(want, limit, in_use, per_slot)
