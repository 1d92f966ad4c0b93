"""How the entry points (``plugboard-beam``, the Flex Template launcher) end their process.

A finished process that used Arrow can abort while the interpreter tears down (``terminate
called without an active exception``, exit -6): Arrow's thread pools are destroyed with a
worker still attached (apache/arrow#34314; seen about once per full run of this project's
tests, after a successful Parquet read). So an entry point ends the way a finished program
should, without that teardown: Python's exit handlers run (logging, Beam's and ours),
non-daemon threads get ``THREAD_WAIT`` seconds (Python would wait for them forever), output is
flushed, and the process exits with its code.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import typing as _t

#: seconds an ending process waits for threads still running (non-daemon ones)
THREAD_WAIT = 5.0


def exit_code(code: _t.Any) -> int:
    """A ``SystemExit`` code as a process exit code (a message is printed, as Python does)."""
    if isinstance(code, bool) or code is None:
        return int(bool(code))
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def exit_process(code: int, thread_wait: float = THREAD_WAIT) -> _t.NoReturn:
    """End this process with ``code`` after its exit handlers, without the interpreter's teardown."""
    try:
        deadline = time.monotonic() + thread_wait
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop waiting
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
