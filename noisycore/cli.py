"""The ``noisycore`` command: the same operations as the app, from a terminal.

Every user error prints one line on stderr and exits with code 2; nothing is written on error.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Optional

from noisycore import console, detect, detectors, runs, workspaces
from noisycore.cliargs import (add_data_args, add_noise_args, add_train_options, check_labels_path, data_config,
                               noise_config, train_config)
from noisycore.config import ConfigError
from noisycore.console import StatusLine, StopSignals, import_quietly
from noisycore.corrections import EXPORT_FORMATS, export
from noisycore.errors import UserError
from noisycore.util import write_csv
from noisycore.util import pct as fmt_pct

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) instead of usage + error."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def cmd_datasets(args) -> int:
    from noisycore.datasets import list_sources

    for src in list_sources():
        status = "ready" if src.get("available", True) else "not available offline"
        print(f"{src['name']:<12} {status:<22} {src.get('description', '')}")
    return 0


def cmd_inject(args) -> int:
    from noisycore.datasets import load_dataset
    from noisycore.labelsets import save_label_set
    from noisycore.noise import apply_noise, describe

    ncfg = noise_config(args)  # validate before the (slow) load
    if ncfg.human_labels and not ncfg.human_labels.lower().endswith(".csv"):
        from noisycore.human_labels import read_cifar10n_pt

        read_cifar10n_pt(ncfg.human_labels)   # a bad or malicious label file is refused before any image is read
    dcfg = data_config(args)
    dataset = load_dataset(dcfg)
    noisy = apply_noise(dataset, ncfg)
    out = save_label_set(args.out, dataset, noisy, data_config=dcfg)
    from noisycore.datasets import skipped_text

    if skipped_text(dataset):
        print(skipped_text(dataset))
    print(describe(ncfg, dataset.num_classes))
    n = len(noisy.labels)
    if noisy.realized_rate is None:
        print(f"{n} labels written to {out / 'labels.csv'} (true labels unknown, so no noise rate)")
    else:
        wrong = int(noisy.is_noisy.sum())
        print(f"realized noise rate: {noisy.realized_rate:.2%} ({wrong} of {n} labels differ from the truth)")
        print(f"written: {out / 'labels.csv'} and {out / 'noise.json'}")
    return 0


def cmd_train(args) -> int:
    import shutil

    from noisycore import runs

    config = train_config(args)
    check_labels_path(config.labels_path)
    config = on_a_runs_labels(config, args)
    owner = args.owner or workspaces.default_owner()   # a bad $NOISYLAB_OWNER is named before TensorFlow loads
    if _cluster(args):
        return _train_on_cluster(config, args, owner=owner)
    train = import_quietly("noisycore.train")  # TensorFlow loads only after the options are known to be valid
    train.check_config(config)
    run_dir = runs.create_run(config, root=args.out, owner=owner)
    line = StatusLine()
    line.show("loading the images and building the model", key="start")
    bar = _ProgressBar(line, run_dir)
    SIGNALS.training.set()
    try:
        summary = train.run(config, run_dir, progress=bar)
    except KeyboardInterrupt:
        line.close()
        print(f"stopped; the partial run is in {run_dir}", file=sys.stderr)
        return SIGNALS.exit_code or 130
    except UserError:
        line.close()
        if runs.read_metrics(run_dir).empty:   # refused before training: keep no failed run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        SIGNALS.training.clear()
    line.close()
    if not bar.announced:
        print(f"run folder: {run_dir}")
    print(_summary_line(summary))
    _print_verdict(run_dir, summary)
    if SIGNALS.signum is not None:
        print(f"stopped by a signal; the run is in {run_dir}", file=sys.stderr)
        return SIGNALS.exit_code
    if config.loss == "forward":
        from noisycore import forward

        print(forward.describe(forward.read_record(run_dir)))
    return 0 if summary.get("state") in ("finished", "stopped") else 1


def on_a_runs_labels(config, args):
    """``train --labels RUN_DIR`` (a run folder): the run's exact labels on the images it trained on, with its
    seed, validation share and max_train unless given here (noisycore.teaching.same_labels_config: the Compare
    page's "Same labels, pretrained features" builds the same config). Another --dataset is refused."""
    from noisycore import teaching

    run_dir = runs.labels_run(config.labels_path)
    if run_dir is None:
        return config
    run_config = runs.read_config(run_dir)
    if args.dataset not in ("builtin", run_config.data.source):   # "builtin" is the option's default
        raise UserError(f"--labels {args.labels} is the run {run_dir.name}, trained on {run_config.data.source}, "
                        f"not --dataset {args.dataset}; leave out --dataset (the run's images are used)")
    given = {"seed": args.seed, "val_fraction": args.val_fraction, "max_train": args.max_train,
             "trusted_val": args.trusted_val or None}
    return teaching.same_labels_config(config, run_config, run_dir, keep=[k for k, v in given.items() if v is not None])


def _train_on_cluster(config, args, *, owner: str) -> int:
    """``train --cluster``: the run is a job on the cluster; this terminal follows its status.json."""
    import time

    from noisycore import executors, jobs

    ex = executors.executor(_cluster(args))
    run_dir = ex.start(config, root=args.out, owner=owner, cpus=args.cpus_per_run)
    print(f"run folder: {run_dir} (on the cluster {args.cluster}, {runs.read_status(run_dir).get('cpus')} CPU(s))",
          flush=True)
    line, shown = StatusLine(), None
    try:
        while (status := jobs.poll(run_dir)).get("state") in runs.ACTIVE_STATES:
            where = f" on {status['node']}" if status.get("node") and status.get("state") == "running" else ""
            text = f"{status.get('state')}{where}: epoch {status.get('epoch', 0)}/{status.get('epochs')}"
            if text != shown:
                line.show(text, key=text)
                shown = text
            time.sleep(0.5)
    except KeyboardInterrupt:
        ex.stop(run_dir)
        line.close()
        print(f"stop requested; the partial run is in {run_dir}", file=sys.stderr)
        return SIGNALS.exit_code or 130
    line.close()
    summary = runs.read_summary(run_dir)
    print(_summary_line(summary) if summary else f"{status.get('state')}: {status.get('error')}")
    return 0 if status.get("state") in ("finished", "stopped") else 1


class _ProgressBar:
    """The training progress on a StatusLine: epoch, batch and a bar (one line per epoch when piped).
    The run folder is printed (stdout) when training begins, after every input was accepted."""

    def __init__(self, line: StatusLine, run_dir, width: int = 30):
        self.line, self.run_dir, self.width, self.announced = line, run_dir, width, False

    def __call__(self, info: dict) -> None:
        if info.get("phase"):   # before training, e.g. embedding the images for a pretrained head
            done, total = info.get("done", 0), info.get("total", 0)
            self.line.show(info["phase"], key=(info["phase"].split(":")[0], 10 * done // max(total, 1)))
            return
        epoch, epochs = info.get("epoch", 0), info.get("epochs", 0)
        batch, batches = info.get("batch", 0), info.get("batches", 0)
        if not epochs or not batches:
            return
        if not self.announced:
            self.line.close()
            print(f"run folder: {self.run_dir}", flush=True)
            self.announced = True
            choice = runs.read_status(self.run_dir).get("calibration")
            if choice:   # the fast preset timed on this machine: what it chose and why
                print(f"calibrated: {choice['why']}" + (f"; budget {choice['budget_minutes']:g} min -> "
                      f"{choice['epochs']} epochs" if choice.get("budget_minutes") else ""), flush=True)
        if not self.line.tty and batch != batches:
            return                                # piped: one line per epoch, when it ends
        done = (epoch - 1 + batch / batches) / epochs
        fill = int(done * self.width)
        self.line.show(f"[{'#' * fill}{'.' * (self.width - fill)}] epoch {epoch}/{epochs} batch {batch}/{batches}",
                       key=epoch)


def _print_verdict(run_dir, summary: dict) -> None:
    """The scale-up note and how the network compares with the linear baseline (a warning when it learned
    nothing or is not clearly better: before anyone reviews a queue built on it)."""
    from noisycore import baseline, runs

    status = runs.read_status(run_dir)
    if status.get("note"):
        print(status["note"])
    if status.get("features"):
        print(f"pretrained features of the {status['features']}")
    record = baseline.read(run_dir)
    features = baseline.features_text(record)
    if features:
        print(features)
    verdict = baseline.run_verdict(summary, record)
    if verdict.text:
        print(("WARNING: " if verdict.warn else "") + verdict.text)


def _summary_line(s: dict) -> str:
    def pct(key):
        return fmt_pct(s.get(key), 2, missing="n/a")

    head = (s.get("skipped_images") + "\n") if s.get("skipped_images") else ""
    if s.get("truth_known") is False:   # the user's own labels: no claim about true labels
        return (f"{head}{s.get('state')}: {s.get('epochs_done')} epochs, best epoch {s.get('best_epoch')}; "
                f"held-out accuracy (given labels) {pct('test_accuracy')} (last epoch {pct('last_test_accuracy')}); "
                f"train accuracy on the given labels {pct('train_acc_noisy')}")
    return (f"{head}{s.get('state')}: {s.get('epochs_done')} epochs, best epoch {s.get('best_epoch')}; "
            f"test accuracy {pct('test_accuracy')} (last epoch {pct('last_test_accuracy')}); "
            f"train accuracy on given labels {pct('train_acc_noisy')}, on true labels {pct('train_acc_true')}")


# ----------------------------------------------------------------------------- detect and export
def add_review_commands(subparsers) -> None:
    """Add ``noisycore detect`` and ``noisycore export``."""
    p = subparsers.add_parser("detect", help="find likely wrong labels in a training run")
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--detector", default="confident_learning", choices=list(detectors.DETECTORS))
    p.add_argument("--folds", type=int, default=None,
                   help="out-of-sample probabilities by K-fold cross-validation (K >= 2 trainings, in this "
                        "terminal); 0 = the run's own (in-sample) predictions; default: reuse an earlier "
                        "cross-validation of the run if there is one, else in-sample")
    p.add_argument("--out", required=True, help="CSV to write (every training image, most suspicious first)")
    p.set_defaults(func=cmd_detect)

    p = subparsers.add_parser("export", help="export a run's reviewed labels")
    p.add_argument("--run", required=True, help="a run folder with review decisions")
    p.add_argument("--format", choices=list(EXPORT_FORMATS), default="csv",
                   help="; ".join(f"{k}: {v}" for k, v in EXPORT_FORMATS.items()))
    p.add_argument("--detector", default=None, help="whose label_quality goes into the score column")
    p.add_argument("--out", required=True, help="file to write (.csv or .zip)")
    p.set_defaults(func=cmd_export)


def _source_for(run: Path, folds: Optional[int], cluster: Optional[str] = None,
                cpus_per_run: Optional[int] = None) -> str:
    """in_sample for --folds 0; else (after cross-validating with --folds K) the better out-of-sample
    predictions, the network's folds or the linear baseline (detect.best_source), said in one line."""
    if folds == 0:
        return "in_sample"
    if folds is None:
        return _say_source(run)
    if folds < 2:
        raise UserError(f"--folds {folds} is not valid: use 0 (in-sample) or at least 2 folds")
    if cluster:
        from noisycore import executors, fanout

        line = StatusLine()
        try:
            fanout.cross_validate(run, executors.executor(cluster), folds=folds, progress=line.show,
                                  cpus=cpus_per_run)
        finally:
            line.close()
        return _say_source(run)
    crossval = import_quietly("noisycore.crossval")   # loads TensorFlow: its start-up noise hidden
    line = StatusLine()     # redrawn in place on a terminal; one line per fold and epoch when piped
    try:
        crossval.cross_validate(run, folds=folds, progress=lambda status: line.show(crossval.progress_text(status)))
    except BaseException as e:
        line.close()
        runs.update_status(run / crossval.CV_DIR, state="stopped" if isinstance(e, KeyboardInterrupt) else "failed",
                           error=" ".join(str(e).split()) or type(e).__name__, finished=runs.now_iso())
        raise
    line.close()
    runs.update_status(run / crossval.CV_DIR, state="finished", error=None, finished=runs.now_iso())
    return _say_source(run)


def _say_source(run: Path) -> str:
    """detect.best_source, and which predictions it chose and why, on stdout (a warning when the linear
    baseline beat the network: the queue is then built on the baseline)."""
    source, found = detect.best_source(run)
    acc = {s: f"{100 * a['accuracy']:.1f}%" for s, a in found.items()}
    if source in ("baseline", "embeddings", "ensemble"):
        print(f"{'WARNING: ' if source == 'baseline' else ''}predictions: {detect.SOURCES[source]}; they agree with "
              f"the given labels more often ({acc[source]}) than the network "
              f"({detect.network_agreement(source, found)})")
    return source


def cmd_detect(args) -> int:
    run = detect.run_path(args.run)
    if args.detector not in detect.available_detectors(run):
        raise UserError(f"{run.name} cannot run {args.detector}: it recorded no margins (aum also needs a run "
                        "trained with aum_threshold_samples); pick another detector")
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .csv file name")
    source = _source_for(run, args.folds, _cluster(args), args.cpus_per_run)
    frame = detect.detect(run, detector=args.detector, source=source)
    cols = ["id", "given_label", "proposed_label", "label_quality", "is_label_issue"]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, frame[cols])
    n_flag = int(frame["is_label_issue"].sum())
    print(f"{args.detector} ({source.replace('_', '-')} predictions): {n_flag} of {len(frame)} labels flagged; "
          f"written to {out}")
    meta = detect.detection_meta(run)[args.detector]
    print(f"confident learning estimates {meta['estimated_issues']} wrong label(s) among the {len(frame)} images; "
          "review the most suspicious ones first")
    if source == "in_sample":
        print("note: in-sample predictions come from a model that trained on these labels; "
              "use --folds 4 for out-of-sample ones")
    ev = detect.detection_meta(run)[args.detector].get("evaluation")
    if ev:
        print(f"against the true labels: precision {ev['precision']:.1%}, recall {ev['recall']:.1%}, "
              f"F1 {ev['f1']:.3f} ({ev['true_positives']} of {ev['n_noisy']} wrong labels found)")
    return 0


def cmd_export(args) -> int:
    path = export(args.run, fmt=args.format, out=args.out, detector=args.detector)
    print(f"written: {path}")
    return 0


def cmd_embed(args) -> int:
    """Embed a dataset's images once (pretrained EfficientNet-Lite2), cached for every later run."""
    from noisycore import embeddings
    from noisycore.datasets import load_dataset

    dcfg = data_config(args)
    embeddings.check_options(size=args.size, batch=args.batch, precision=args.precision)   # before the load
    dataset = load_dataset(dcfg)
    line = StatusLine()
    started = {}

    def progress(done, total):
        t0, d0 = started.setdefault("at", (time.time(), done))     # a resumed embed starts past 0
        rate = (done - d0) / max(time.time() - t0, 1e-9) if d0 < done < total else 0.0
        line.show(f"embedding {done}/{total} images" + (f" ({rate:.0f} images/s)" if rate else ""),
                  key=done * 10 // max(total, 1))

    import_quietly("noisycore.backbones.efficientnet")
    notes = []
    emb = embeddings.embed(dataset, size=args.size, batch=args.batch, precision=args.precision, progress=progress,
                           notice=notes.append)
    line.close()
    for note in notes:   # the original photos could not be used (moved, changed)
        print(note, file=sys.stderr)
    path = embeddings.embedding_file(dataset, size=args.size, precision=args.precision)
    pixels = embeddings.pixels_text(embeddings.cache_meta(path))
    print(f"{emb.shape[0]} images x {emb.shape[1]} features of the {pixels}: {path} "
          f"({path.stat().st_size / 2**20:.1f} MB)")
    return 0


def _owner_name(text: str) -> str:
    try:
        return workspaces.check_name(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="noisycore", description="Noisy Label Lab from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", help="list the datasets that can be loaded")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("inject", help="make a noisy label set (labels.csv + noise.json)")
    add_data_args(p)
    add_noise_args(p, required=True)
    p.add_argument("--out", required=True, help="folder to write labels.csv and noise.json into")
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser("train", help="train one model in this terminal and write its run folder")
    add_train_options(p)
    p.add_argument("--out", default=None, help="folder that holds the run folders (default: $NOISYLAB_RUNS, else runs/: where the app lists runs)")
    p.add_argument("--owner", default=None, type=_owner_name,
                   help=f"whose run it is: a workspace name the app shows it under (default: ${workspaces.OWNER_ENV}, "
                        "else your user name)")
    p.set_defaults(func=cmd_train)

    from noisycore.embeddings import DEFAULT_PRECISION, DEFAULT_SIZE, PRECISIONS
    p = sub.add_parser("embed", help="compute a dataset's pretrained embeddings once (cached, resumable)")
    add_data_args(p)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help=f"input size in pixels the images are resized to (default {DEFAULT_SIZE})")
    p.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help=f"compute precision (default {DEFAULT_PRECISION}; the cache is kept per precision)")
    p.set_defaults(func=cmd_embed)

    add_review_commands(sub)
    for module in _EXTRA_COMMANDS:
        importlib.import_module(module).add_cli(sub)
    for name in ("train", "sweep", "detect"):
        sub.choices[name].add_argument(
            "--cluster", default=None, metavar="auto|ADDRESS",
            help="run on a Ray cluster: auto (RAY_ADDRESS or the cluster `ray start` started here) or HOST:PORT; "
                 "default (or local): this machine")
        sub.choices[name].add_argument(
            "--cpus-per-run", type=int, default=None, metavar="N",
            help="with --cluster: the CPUs each run, sweep cell or fold reserves on its node (default "
                 "$NOISYLAB_CPUS_PER_RUN, else 1); TensorFlow's threads are sized to it")
    sub.choices["sweep"].set_defaults(func=_cmd_sweep)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="show TensorFlow's start-up messages (hidden by default)")
    return parser


# Modules that add their own sub-commands with add_cli(subparsers); one line each.
_EXTRA_COMMANDS: list = [
    "noisycore.sweeps",
]


def _cluster(args) -> Optional[str]:
    """The --cluster address, None for this machine (the command line ignores the app's NOISYLAB_CLUSTER)."""
    from noisycore.executors import cluster_setting

    address = cluster_setting(args.cluster or "local")
    if address is None and getattr(args, "cpus_per_run", None) is not None:
        raise UserError(f"--cpus-per-run {args.cpus_per_run} is a reservation on a cluster; add --cluster auto|ADDRESS "
                        "or leave it out (a run on this machine uses all its CPUs)")
    return address


def _cmd_sweep(args) -> int:
    """``noisycore sweep``: the cells train here (sweeps.cmd_sweep), or as cluster jobs with --cluster."""
    from noisycore import executors, sweeps

    cluster = _cluster(args)
    if cluster is None:
        return sweeps.cmd_sweep(args)
    from noisycore import fanout

    ex = executors.executor(cluster)
    return sweeps.cmd_sweep(args, cluster_runner=lambda sweep_dir, report: fanout.sweep(
        sweep_dir, ex, report=report, cpus=args.cpus_per_run))


SIGNALS = StopSignals()       # SIGINT / SIGTERM of this command (installed by main)


def main(argv=None) -> int:
    """Run one command. Exit codes: 0 done, 1 a run failed, 2 bad input (nothing created),
    130 / 143 ended by SIGINT (Ctrl-C) / SIGTERM (a run keeps its epochs and is marked stopped)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console.VERBOSE = bool(getattr(args, "verbose", False))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if console.VERBOSE else "3")
    SIGNALS.install()
    try:
        code = int(args.func(args) or 0)
    except (UserError, ConfigError) as e:
        print(f"noisycore {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nnoisycore {args.command}: interrupted", file=sys.stderr)
        return SIGNALS.exit_code or 130
    finally:
        SIGNALS.restore()
    return SIGNALS.exit_code or code


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
