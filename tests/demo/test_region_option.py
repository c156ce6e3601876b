"""`edgemeta demo --region X,Y,W,H`: the user sets the only part of the frame the front end looks at."""
from __future__ import annotations

import pytest

from edgemeta.cli import main

SESSION = "synthetic://omniglot?classes=3&shots=4&frames_per_shot=6&gap=1&seed=3"


def _curve_rows(out: str) -> dict[int, list[str]]:
    return {int(line.split()[0]): line.split() for line in out.splitlines()
            if line.strip()[:1].isdigit() and len(line.split()) == 6}


def test_a_region_around_the_card_learns_and_one_in_a_corner_finds_nothing(capsys):
    assert main(["demo", "--headless", "--source", SESSION, "--region", "120,60,400,360"]) == 0
    rows = _curve_rows(capsys.readouterr().out)
    assert rows[1][2] == "100.0%" and float(rows[1][3].rstrip("%")) > 60  # found, and named after one shot

    assert main(["demo", "--headless", "--source", SESSION, "--region", "0,0,60,60"]) == 0
    rows = _curve_rows(capsys.readouterr().out)
    assert all(r[2] == "0.0%" for r in rows.values())  # the card never enters the corner: nothing is found


@pytest.mark.parametrize("value, message", [
    ("1,2,3", "is not X,Y,W,H in whole pixels"),
    ("1,2,3,-4", "is not X,Y,W,H in whole pixels"),
    ("0,0,4,4", "at least 8x8"),
    ("900,900,100,100", "does not fit in a 640x480 frame"),
])
def test_a_bad_region_is_one_line(value, message, capsys):
    code = main(["demo", "--headless", "--source", SESSION, "--region", value, "--max-frames", "3"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and message in err, err
