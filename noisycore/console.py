"""Terminal behaviour of the ``noisycore`` command: quiet TensorFlow start-up, progress lines, signals.

    quiet_tensorflow(module, verbose=False)   import a TF-loading module with its start-up noise hidden
    import_quietly(module)                    the same, verbose as the command's --verbose
    StatusLine()                              redraws in place on a terminal, one line per change when piped
    signals = StopSignals().install()         SIGINT / SIGTERM: first one stops the run gracefully
    signals.exit_code                         130 (SIGINT) or 143 (SIGTERM) once one arrived, else None

TensorFlow's start-up noise comes from three places: C++ logging (TF_CPP_MIN_LOG_LEVEL, read when the
library loads), absl logging (the "All log messages before absl::InitializeLog()" line) and the CUDA
probe on a machine without a GPU ("failed call to cuInit"), written straight to file descriptor 2 at
the first device query. So the environment is set before the import and fd 2 points at /dev/null while
the module loads and while the devices are listed once. ``--verbose`` keeps all of it.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
VERBOSE = False   # the command's --verbose: keep TensorFlow's start-up messages (set by cli.main)


@contextlib.contextmanager
def stderr_to_devnull():
    """Point file descriptor 2 at /dev/null for the block (catches C++ writes that bypass sys.stderr)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow(module: str, *, verbose: bool = False):
    """Import ``module`` (which loads TensorFlow) and query the devices once, hiding TF's start-up noise
    unless ``verbose``; afterwards only TF errors are logged."""
    if verbose:
        mod = importlib.import_module(module)
        import tensorflow as tf

        tf.config.list_physical_devices()
        return mod
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"          # before the library loads: C++ info, warnings, errors
    with stderr_to_devnull():
        mod = importlib.import_module(module)
        import tensorflow as tf

        tf.config.list_physical_devices()               # the CUDA probe (cuInit) happens here, not at import
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)   # retracing warnings between runs
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return mod


def import_quietly(module: str):
    """Import a module that loads TensorFlow, hiding its start-up noise unless the command runs with
    --verbose (:data:`VERBOSE`)."""
    return quiet_tensorflow(module, verbose=VERBOSE)


class StatusLine:
    """A progress line on stderr: redrawn in place (``\\r``) on a terminal; when piped (a log file, a
    batch job), one line per distinct ``key`` (e.g. per epoch), never a run of carriage returns."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width, self.last_key, self.open = 0, None, False

    def show(self, text: str, *, key=None) -> None:
        """Show ``text``; when piped it is printed only if ``key`` (default: the text) changed."""
        if self.tty:
            self.stream.write("\r" + text + " " * max(self.width - len(text), 0))
            self.width, self.open = len(text), True
        else:
            key = text if key is None else key
            if key == self.last_key:
                return
            self.last_key = key
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line on a terminal (so the next output starts on a fresh line)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


class StopSignals:
    """SIGINT and SIGTERM for a command: the first asks the training in this process to stop within a
    batch (``noisycore.train.request_stop``; the run ends "stopped" with its epochs kept), or raises
    KeyboardInterrupt when nothing is training; a second one raises KeyboardInterrupt at once."""

    def __init__(self):
        self.signum = None
        self.training = threading.Event()     # set while train.run is under way in this process

    @property
    def exit_code(self):
        return EXIT_SIGNAL.get(self.signum)

    def install(self) -> "StopSignals":
        """Catch SIGINT and SIGTERM (main thread only); ``restore`` puts the previous handlers back."""
        self.signum, self._saved = None, {}
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_SIGNAL:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """The handlers from before ``install`` (a command run in-process, e.g. by a test, leaves none behind)."""
        for sig, handler in getattr(self, "_saved", {}).items():
            signal.signal(sig, handler)
        self._saved = {}

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = signum
        train = sys.modules.get("noisycore.train")
        if first and train is not None and self.training.is_set():
            train.request_stop()
            os.write(2, b"\nstopping after this batch (the epochs so far are kept); signal again to stop now\n")
            return
        raise KeyboardInterrupt
