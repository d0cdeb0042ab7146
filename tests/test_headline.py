"""benchmarks/headline.py: the headline table is what the committed results files give, README.md quotes only
its rows, and the blog's reference constants equal the file they were copied into."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import headline  # noqa: E402

# Measured-looking numbers in prose: decimals (with or without a unit or %), "a of b" / "a vs b of c" counts,
# and durations. Integer percentages (a noise rate of 40%) and plain counts are settings, not results.
MEASURED = re.compile(r"\d+ (?:vs \d+ )?of (?:the )?\d+|\d+(?:\.\d+)?\s?(?:min|minutes|s)\b|\d+\.\d+%?")
NOT_RESULTS = {"3.10", "3.11",      # Python versions (Install)
               "2.52",              # the Ray version with token authentication
               "0.0.0.0"}           # an address


def prose(text: str) -> str:
    """README.md without its code: fenced blocks (commands) and inline spans (options such as forget_rate=0.3)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))   # and inline code (options)


def numbers_cells(table: str) -> list:
    return [line.split(" | ")[1] for line in table.splitlines()[2:]]


def test_benchmarks_readme_holds_exactly_the_generated_blocks():
    text = headline.README.read_text(encoding="utf-8")
    generated = headline.blocks()
    assert set(generated) == {"headline", "robust_defaults"}
    for name, block in generated.items():
        assert headline.extract(text, name) == block, f"{name}: run python benchmarks/headline.py --write"
    assert text.index("<!-- generated:headline") < text.index("## Robust defaults") < text.index("# Lab notes")
    assert headline.main(["--check"]) == 0


def test_a_hand_edit_of_the_table_fails_the_check(tmp_path, monkeypatch, capsys):
    text = headline.README.read_text(encoding="utf-8")
    edited = tmp_path / "README.md"
    edited.write_text(text.replace("| 24 of 30 |", "| 23 of 30 |", 1), encoding="utf-8")
    assert edited.read_text() != text
    monkeypatch.setattr(headline, "README", edited)
    assert headline.main(["--check"]) == 1
    assert "headline differ" in capsys.readouterr().err
    assert headline.main(["--write"]) == 0 and edited.read_text(encoding="utf-8") == text   # --write repairs it


def test_rows_are_read_from_the_files():
    """Two rows computed by hand from the committed files."""
    own = json.loads((ROOT / "benchmarks/results/own_data-cpu.json").read_text())
    rows = {r.what: r for r in headline.ROWS}
    first30 = next(r for w, r in rows.items() if "first 30" in w)
    assert headline.row_cells(first30)[1] == f"{own['found_in_first_k']['30']} of {own['planted']}" == "24 of 30"
    flagged = next(r for w, r in rows.items() if "flagged" in w)
    assert headline.row_cells(flagged)[1] == "60 flagged, 29 of 30 planted"    # flag recall 0.9667 x 30 = 29
    cells = headline.row_cells(first30)
    assert cells[2:] == ("Intel(R) Xeon(R) Processor, 2 CPUs", "2026-12-08", "`benchmarks/results/own_data-cpu.json`")


def _row(file, fields=("x",), where=None):
    return headline.Row("a row", file, fields, lambda *v: " ".join(map(str, v)), where or {})


def test_a_row_without_its_file_or_field_is_refused_with_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "r.json").write_text(json.dumps({"x": 1, "machine": "m", "date": "d"}))
    assert headline.row_cells(_row("r.json"), tmp_path)[1] == "1"
    with pytest.raises(headline.Refused, match="no field 'y'"):
        headline.row_cells(_row("r.json", ("y",)), tmp_path)
    (tmp_path / "nodate.json").write_text(json.dumps({"x": 1, "machine": "m"}))
    with pytest.raises(headline.Refused, match="no field 'date'"):
        headline.row_cells(_row("nodate.json"), tmp_path)
    monkeypatch.setattr(headline, "ROWS", headline.ROWS + (_row("benchmarks/results/gone.json"),))
    assert headline.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gone.json: no such results file" in err


def test_superseded_records_are_skipped_and_the_newest_match_wins(tmp_path):
    (tmp_path / "t.csv").write_text("setting,x,machine,date,superseded\n"
                                    "a,1,m,d,\na,2,m,d,\nb,3,m,d,timing artifact\n")
    assert headline.row_cells(_row("t.csv", where={"setting": "a"}), tmp_path)[1] == "2"
    assert headline.row_cells(_row("t.csv", where={"setting": "b"}), tmp_path) is None
    skipped = []
    table = headline.headline((_row("t.csv", where={"setting": "b"}),), tmp_path, skipped)
    assert skipped == ["a row"] and len(table.splitlines()) == 2
    with pytest.raises(headline.Refused, match="no such record"):
        headline.row_cells(_row("t.csv", where={"setting": "c"}), tmp_path)


def test_the_superseded_time_to_accuracy_files_are_marked_in_the_file():
    """The four files with the 0.342 s/step blog timing are marked in every row; no row the table quotes is."""
    import pandas as pd

    for tag in ("relu", "fast-e10", "fast-e14", "fast_gce-e24"):
        frame = pd.read_csv(ROOT / f"benchmarks/results/time_to_accuracy-cifar10-full-{tag}.csv", keep_default_na=False)
        assert frame["superseded"].str.contains("0.342 s/step").all(), tag
    for row in headline.ROWS:
        assert headline.row_cells(row) is not None, row.what


def test_readme_quotes_only_rows_of_the_headline_table():
    cells = numbers_cells(headline.headline())
    text = prose((ROOT / "README.md").read_text(encoding="utf-8"))
    quoted = [m.group(0) for m in MEASURED.finditer(text)]
    assert "24 of 30" in quoted and "0.149" in quoted       # the extractor sees the README's claims
    stray = sorted({q for q in quoted if q not in NOT_RESULTS and not any(q in c for c in cells)})
    assert not stray, f"README.md quotes numbers that are not rows of benchmarks/README.md's headline: {stray}"


def test_the_extractor_catches_an_unsourced_number():
    cells = numbers_cells(headline.headline())
    found = [m.group(0) for m in MEASURED.finditer("it reaches 87.8% after 13.3 min, 19 of 30 found")]
    assert found == ["87.8%", "13.3 min", "19 of 30"]
    assert not any(any(q in c for c in cells) for q in found)


def test_blog_constants_equal_the_reference_file():
    import time_to_accuracy

    from noisycore import calibration

    ref = json.loads((ROOT / "benchmarks/reference/blog_reference.json").read_text())["runs"]
    assert time_to_accuracy.BLOG_BEST == {s: (ref[s]["best_test_accuracy"], ref[s]["best_epoch"])
                                          for s in ("clean", "sym40", "worst")}
    assert calibration.TARGET_ACCURACY == round(100 * ref["sym40"]["best_test_accuracy"], 1)
    # and the anchor itself, when this machine has it
    anchors = ROOT.parent / "shared" / "anchors" / "blog-reference"
    if anchors.is_dir():
        for s in ("clean", "sym40", "worst"):
            run = json.loads((anchors / f"blog_{s}.json").read_text())
            assert (run["restored_test_acc"], run["best_epoch"]) == (ref[s]["best_test_accuracy"], ref[s]["best_epoch"])
