"""ssd/data/paths.py: the one confinement rule (issue 20 items 2-5 and 7)."""
import os
import threading
import time

import pytest

from ssd.data.paths import JOB_ROOTS_ENV, PathRefused, confine, confined_to, read_regular


def _quick(fn, *args, within_s: float = 3.0):
    """fn(*args) in a thread; its result or exception, failing if it blocks."""
    out = []

    def run():
        try:
            out.append(("ok", fn(*args)))
        except Exception as e:  # noqa: BLE001 - handed back to the test
            out.append(("err", e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(within_s)
    assert out, f"{fn.__name__}{args} blocked for {within_s} s"
    return out[0]


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.xml").write_text("<annotation/>")
    (root / "ok.xml").write_text("<annotation/>")
    (root / "link.xml").symlink_to(outside / "secret.xml")
    (root / "dirlink").symlink_to(outside)
    return root, outside


def test_outside_the_roots_reads_the_same_whatever_is_there(tree):
    root, outside = tree
    assert confine(root / "ok.xml", "annotation", (root,)) == (root / "ok.xml").resolve()
    messages = []
    for p in (outside / "secret.xml", outside / "missing.xml", outside, root / "link.xml",
              root / "dirlink" / "secret.xml", root / ".." / "outside" / "secret.xml", "/etc/shadow", "/etc"):
        with pytest.raises(PathRefused, match="outside the allowed data folders") as e:
            confine(p, "annotation", (root,))
        messages.append(str(e.value).replace(str(p), "P"))
    assert len(set(messages)) == 1, set(messages)  # nothing said about what exists outside


def test_inside_the_roots_missing_and_wrong_kind_are_named(tree):
    root, _ = tree
    with pytest.raises(PathRefused, match="not found"):
        confine(root / "nope.xml", "annotation", (root,))
    with pytest.raises(PathRefused, match="not a regular file"):
        confine(root, "annotation", (root,))
    with pytest.raises(PathRefused, match="not a folder"):
        confine(root / "ok.xml", "VOC folder", (root,), kind="dir")


def test_nul_byte_is_a_clear_refusal():
    """Item 7: a NUL byte raised an uncaught ValueError from os.stat."""
    with pytest.raises(PathRefused, match="NUL byte"):
        confine("/tmp/a\x00b", "VOC folder", None, kind="dir")


def test_fifo_and_device_refused_at_once(tree):
    """Item 3: a FIFO named like an annotation hung the reader until someone wrote to it."""
    root, _ = tree
    os.mkfifo(root / "a.xml")
    for path, roots in ((root / "a.xml", (root,)), (root / "a.xml", None), ("/dev/zero", None)):
        kind, res = _quick(read_regular, path, "annotation", 1 << 20, roots)
        assert kind == "err" and isinstance(res, PathRefused) and "not a regular file" in str(res), res


def test_sparse_gigabyte_refused_by_its_size_unread(tree):
    """Item 4: a 1 GiB sparse .json was read whole (+2 GB RSS)."""
    root, _ = tree
    big = root / "big.json"
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    t0 = time.perf_counter()
    with pytest.raises(PathRefused, match="over the 512 MiB limit"):
        read_regular(big, "COCO JSON", 512 << 20, (root,))
    assert time.perf_counter() - t0 < 0.5


def test_readers_follow_the_roots_in_force(tree, monkeypatch):
    """Item 5: inside `confined_to` or a job's `$SSD_JOB_DATA_ROOTS`, a link out of the
    root is refused by the reader itself, without naming what it points to."""
    from ssd.data.formats import AnnotationError, read_voc_xml

    root, _ = tree
    assert read_voc_xml(root / "link.xml").objects == ()  # the library alone: no roots, reads
    with confined_to((root,)):
        with pytest.raises(AnnotationError, match="outside the allowed data folders"):
            read_voc_xml(root / "link.xml")
        assert read_voc_xml(root / "ok.xml").objects == ()
    monkeypatch.setenv(JOB_ROOTS_ENV, str(root))
    with pytest.raises(AnnotationError, match="outside the allowed data folders"):
        read_voc_xml(root / "link.xml")
    monkeypatch.setenv(JOB_ROOTS_ENV, "")  # a job with no root reads nothing
    with pytest.raises(AnnotationError, match="outside"):
        read_voc_xml(root / "ok.xml")
