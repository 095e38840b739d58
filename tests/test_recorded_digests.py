"""The behaviour guard itself (conftest.check_recorded_digest): what it compares on a recorded
kind of CPU and on an unrecorded one, and the committed records' claim that the classic codecs'
bitstreams, reference images and annotations are the same on every kind recorded."""

import json

import pytest

from tests import conftest
from tests.conftest import RECORDED_DIGESTS, _portable, check_recorded_digest


def _run(root, png=b"decoded", jpg=b"stream"):
    results = root / "results"
    (results / "scenes" / "c" / "1").mkdir(parents=True, exist_ok=True)
    (results / "scenes" / "c" / "1" / "val_000000.jpg").write_bytes(jpg)
    (results / "scenes" / "c" / "1" / "val_000000.png").write_bytes(png)
    (results / "logs").mkdir(exist_ok=True)
    (results / "logs" / "job.log").write_text("not digested")
    return root


@pytest.fixture
def records(tmp_path, monkeypatch):
    path = tmp_path / "recorded.json"
    monkeypatch.setattr(conftest, "RECORDED_DIGESTS", path)
    monkeypatch.setattr(conftest, "cpu_kind", lambda: "kind-a")
    monkeypatch.setenv("DISCOVER_RECORD_DIGESTS", "1")
    check_recorded_digest(_run(tmp_path / "a"), "run")
    monkeypatch.delenv("DISCOVER_RECORD_DIGESTS")
    return path


def test_a_recorded_kind_compares_every_file(records, tmp_path):
    check_recorded_digest(_run(tmp_path / "same"), "run")
    with pytest.raises(AssertionError, match=r"changed \['scenes/c/1/val_000000.png'\]"):
        check_recorded_digest(_run(tmp_path / "png", png=b"other pixels"), "run")


def test_an_unrecorded_kind_compares_the_bitstreams(records, tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "cpu_kind", lambda: "kind-b")
    check_recorded_digest(_run(tmp_path / "png", png=b"other last bits"), "run")
    with pytest.raises(AssertionError, match="none on this kind of CPU"):
        check_recorded_digest(_run(tmp_path / "jpg", jpg=b"other stream"), "run")
    missing = _run(tmp_path / "missing")
    (missing / "results" / "scenes" / "c" / "1" / "val_000000.jpg").unlink()
    with pytest.raises(AssertionError, match=r"missing \['scenes/c/1/val_000000.jpg'\]"):
        check_recorded_digest(missing, "run")


def test_recording_new_outputs_drops_the_other_kinds(records, tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "cpu_kind", lambda: "kind-b")
    monkeypatch.setenv("DISCOVER_RECORD_DIGESTS", "1")
    check_recorded_digest(_run(tmp_path / "b"), "run")
    assert [r["cpu"] for r in json.loads(records.read_text())["run"]] == ["kind-a", "kind-b"]
    monkeypatch.setenv("DISCOVER_RECORD_DIGESTS", "new")
    check_recorded_digest(_run(tmp_path / "c", jpg=b"retrained"), "run")
    assert [r["cpu"] for r in json.loads(records.read_text())["run"]] == ["kind-b"]


def test_committed_records_agree_on_the_portable_files():
    """Every pair of kinds recorded for a run holds the same bitstreams, reference images and
    annotations: what an unrecorded kind is held to."""
    for name, recs in json.loads(RECORDED_DIGESTS.read_text()).items():
        first = recs[0]["files"]
        portable = {k for k in first if _portable(k)}
        assert portable, name
        for r in recs[1:]:
            other = {k for k in r["files"] if _portable(k)}
            assert other == portable, (name, r["cpu"])
            assert all(r["files"][k] == first[k] for k in portable), (name, r["cpu"])
