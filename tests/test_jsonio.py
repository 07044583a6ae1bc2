"""Results files: strict JSON (NaN and infinity as null), replaced atomically."""
import json
import math

import pytest

from minires.jsonio import write_json


def test_write_json_writes_strict_json_with_null_for_nan(tmp_path):
    path = tmp_path / "r.json"
    write_json({"a": [1.0, math.nan], "b": (math.inf, "x")}, str(path))
    assert json.loads(path.read_text()) == {"a": [1.0, None], "b": [None, "x"]}


def test_write_json_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "r.json"
    write_json({"run": 1}, str(path))
    with pytest.raises(TypeError):
        write_json({"run": object()}, str(path))      # not serialisable
    assert json.loads(path.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]     # no temporary left
