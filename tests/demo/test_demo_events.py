"""EVENTS.csv parsing (with every malformed case) and the LOG.jsonl writer."""
from __future__ import annotations

import json

import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime.demo.events import JsonlLog, load_events, parse_events


def test_parses_frames_and_labels_with_comments_and_blank_lines():
    text = "# taught by hand\nframe,label\n\n3,0\n 10 , 2 \n# later\n7,1\n"
    assert parse_events(text, num_classes=3) == {3: 0, 10: 2, 7: 1}
    assert parse_events("Frame, Label\n") == {}  # header only: nothing taught


@pytest.mark.parametrize("text, message", [
    ("", "empty events file"),
    ("# nothing\n\n", "empty events file"),
    ("3,0\n", "events:1: expected the header 'frame,label'"),
    ("label,frame\n3,0\n", "expected the header 'frame,label'"),
    ("frame,label\n3\n", "events:2: expected 'FRAME,LABEL'"),
    ("frame,label\n3,0,1\n", "events:2: expected 'FRAME,LABEL'"),
    ("frame,label\n3,a\n", "events:2: expected 'FRAME,LABEL' .*'3,a'"),
    ("frame,label\n2.5,1\n", "events:2: expected 'FRAME,LABEL'"),
    ("frame,label\n-1,0\n", "frame -1 is negative"),
    ("frame,label\n1,-2\n", "label -2 is negative"),
    ("frame,label\n1,0\n\n1,2\n", "events:4: frame 1 is taught twice"),
    ("frame,label\n1,3\n", r"events:2: label 3 is out of range for this model's 3 classes \(valid: 0-2\)"),
])
def test_malformed_events_are_one_line_errors_with_the_line(text, message):
    with pytest.raises(EdgemetaError, match=message) as e:
        parse_events(text, num_classes=3)
    assert "\n" not in str(e.value)


def test_load_events_names_the_file(tmp_path):
    path = tmp_path / "EVENTS.csv"
    with pytest.raises(EdgemetaError, match="EVENTS.csv does not exist"):
        load_events(path)
    path.write_text("frame,label\n0,9\n")
    with pytest.raises(EdgemetaError, match=f"{path}:2: label 9 is out of range"):
        load_events(path, num_classes=5)
    path.write_bytes(b"frame,label\n\xff\xfe,1\n")
    with pytest.raises(EdgemetaError, match="cannot read events file"):
        load_events(path)


def test_log_is_published_atomically_and_keeps_an_old_log_when_empty(tmp_path):
    path = tmp_path / "LOG.jsonl"
    path.write_text('{"old": true}\n')
    log = JsonlLog(path)
    log.write({"frame": 0, "pred": None})
    log.write({"frame": 1, "pred": 2})
    assert path.read_text() == '{"old": true}\n'  # replaced only when the run ends
    assert log.close() == path
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"frame": 0, "pred": None},
                                                                          {"frame": 1, "pred": 2}]
    empty = JsonlLog(path)
    assert empty.close() is None  # a run that processed nothing keeps the previous log
    assert len(path.read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LOG.jsonl"]
