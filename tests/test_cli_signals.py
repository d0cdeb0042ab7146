"""The `noisycore` command in a terminal's life: SIGTERM / SIGINT end a run cleanly, bad input creates
nothing, piped progress is one line per epoch without TensorFlow's start-up noise (real processes)."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noisycore.console import StatusLine

ROOT = Path(__file__).resolve().parents[1]
TF_NOISE = ("cuInit", "absl::InitializeLog", "oneDNN", "cuda_", "retracing")


def _env(home: Path) -> dict:
    env = dict(os.environ, NOISYLAB_HOME=str(home), NOISYLAB_RUNS=str(home / "runs"))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)        # the command itself must hide the noise
    return env


def test_bad_labels_path_creates_nothing(tmp_path):
    out = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "noisycore.cli", "train", "--labels", str(tmp_path / "nothere"),
                        "--out", str(out)], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and "run folder" not in r.stderr
    assert r.stderr.count("\n") == 1 and "no label set at" in r.stderr and "nothere" in r.stderr
    assert not out.exists() or not any(out.iterdir())     # no run folder, no failed run


def test_status_line_redraws_on_a_terminal_and_prints_once_per_key_when_piped():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    piped, tty = io.StringIO(), Tty()
    for stream in (piped, tty):
        line = StatusLine(stream)
        for epoch in (1, 1, 1, 2):
            line.show(f"epoch {epoch}", key=epoch)
        line.close()
    assert piped.getvalue() == "epoch 1\nepoch 2\n"
    assert tty.getvalue() == "\repoch 1" * 3 + "\repoch 2\n"


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_training_keeps_epochs_and_exits_with_its_code(tmp_path, sig, code):
    out = tmp_path / "runs"
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err, open(tmp_path / "stdout.txt", "w") as std:
        proc = subprocess.Popen([sys.executable, "-m", "noisycore.cli", "train", "--epochs", "60", "--max-train", "200",
                                 "--out", str(out)], cwd=ROOT, env=_env(tmp_path), stdout=std, stderr=err)
        try:
            deadline = time.monotonic() + 180
            metrics = None
            while time.monotonic() < deadline and proc.poll() is None:
                found = list(out.glob("*/metrics.csv"))
                if found and len(found[0].read_text().splitlines()) >= 3:     # header + two epochs
                    metrics = found[0]
                    break
                time.sleep(0.3)
            assert metrics is not None, err_path.read_text()[-2000:]
            proc.send_signal(sig)
            assert proc.wait(120) == code, err_path.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    run_dir = metrics.parent
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped", status
    epochs_kept = len(metrics.read_text().splitlines()) - 1
    assert 2 <= epochs_kept < 60
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "stopped" and summary["epochs_done"] == epochs_kept
    assert (run_dir / "best.keras").exists()
    stdout = (tmp_path / "stdout.txt").read_text()
    assert stdout.startswith(f"run folder: {run_dir}\n") and "stopped:" in stdout
    stderr = err_path.read_text()
    assert "\r" not in stderr                                 # piped: no redrawn lines
    assert not [n for n in TF_NOISE if n in stderr], stderr[:2000]
    epoch_lines = [ln for ln in stderr.splitlines() if "] epoch " in ln]
    assert [ln.split("] ")[1] for ln in epoch_lines] == [f"epoch {e}/60 batch 3/3" for e in range(1, len(epoch_lines) + 1)]
    assert len(epoch_lines) >= epochs_kept


def test_main_in_process_leaves_the_signal_handlers_as_they_were(tmp_path):
    from noisycore.cli import main

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert main(["train", "--labels", str(tmp_path / "nothere"), "--out", str(tmp_path / "runs")]) == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not (tmp_path / "runs").exists()
