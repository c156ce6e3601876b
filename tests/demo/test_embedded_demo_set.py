"""`make demo` on a fresh clone: no data folder anywhere, and the headless demo still learns, from the embedded set."""
from __future__ import annotations

from edgemeta.cli import main
from edgemeta.runtime import omniglot as og
from edgemeta.runtime.demo.events import read_log

SESSION = "synthetic://omniglot?classes=5&shots=4&frames_per_shot=6&gap=1&width=320&height=240&seed=3"


def test_headless_demo_with_no_data_folder_learns_from_the_embedded_set(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(og, "CHECKOUT", None)  # no ../shared beside the checkout
    monkeypatch.chdir(tmp_path)  # nor beside the current directory
    assert og.find_data_dir() is None
    log = tmp_path / "log.jsonl"
    assert main(["demo", "--headless", "--source", SESSION, "--shots-to-teach", "3", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "drawings: the embedded demo set (40 meta-test characters)" in out
    header, records = read_log(log)
    assert header == {"source": SESSION, "drawings": "the embedded demo set (40 meta-test characters)"}
    # Accuracy on the frames of classes taught 1-3 times, recomputed from the log (what the user saw).
    taught = [0] * 5
    right = total = 0
    for rec in records:
        if rec["taught"] is not None:
            taught[rec["taught"]] += 1
        elif rec.get("truth") is not None and 1 <= taught[rec["truth"]] <= 3:
            total += 1
            right += rec["pred"] == rec["truth"]
    assert total >= 50 and sum(taught) == 15
    assert right / total > 0.6, f"{right}/{total} right; chance is 20%"
