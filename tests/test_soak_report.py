"""The soak's report parts that need no browser: joining steps with the server's runs, the
per-action summary, the goals, and the server's stack sampler (`benchmarks/soak_*.py`)."""
import json
import threading
import time

import pytest

from benchmarks.soak_report import PhaseProfiles, goals, server_steps, server_summary
from benchmarks.soak_server import StackSampler, read_runs


def _run(tag, t0, wall, cpu):
    return {"session": "id-" + tag, "ua": "ssd-soak " + tag, "t0": t0, "wall_s": wall, "cpu_s": cpu, "fragment": False}


def test_server_steps_joins_a_sessions_runs_inside_the_step():
    steps = [{"tag": "session0", "action": "slider_nms", "t0": 100.0, "t1": 100.5, "t_end": 101.0,
              "do_s": 0.05, "send_s": 0.1},
             {"tag": "session1", "action": "slider_nms", "t0": 100.0, "t1": 100.5, "t_end": 101.0,
              "do_s": 0.05, "send_s": None}]
    runs = [_run("session0", 100.3, 0.2, 0.05), _run("session0", 100.9, 0.1, 0.02),  # both in the step
            _run("session0", 101.5, 9.0, 9.0),  # after it: the next step's
            _run("session1", 99.0, 9.0, 9.0)]  # another session's, before its step
    a, b = server_steps(steps, runs)
    assert (a["n_runs"], a["server_s"], a["cpu_s"]) == (2, pytest.approx(0.3), pytest.approx(0.07))
    assert a["start_s"] == pytest.approx(0.3) and a["queue_s"] == pytest.approx(0.2)  # sent at 0.1, ran at 0.3
    assert (b["n_runs"], b["server_s"], b["start_s"], b["queue_s"]) == (0, 0, None, None)


def test_server_summary_counts_steps_without_a_run_apart():
    joined = [{"action": "x", "n_runs": 1, "server_s": s, "cpu_s": s / 2, "start_s": 0.1, "queue_s": 0.05,
               "do_s": 0.01, "send_s": 0.05, "messages": 10} for s in (0.1, 0.2, 0.3, 0.4)]
    joined.append({"action": "x", "n_runs": 0, "server_s": 0, "cpu_s": 0, "start_s": None, "queue_s": None,
                   "do_s": 0.01, "send_s": None, "messages": None})
    row = server_summary(joined)["x"]
    assert (row["n"], row["no_run"]) == (4, 1)
    assert row["server_p50_s"] == pytest.approx(0.25) and row["cpu_p95_s"] == pytest.approx(0.1925, abs=1e-3)  # rounded to ms
    assert row["messages_p50"] == 10


def test_goals_judge_browser_and_server_p95_against_one_session():
    actions = {"single": {"a": {"n": 1, "p50_s": 1, "p95_s": 1.0}},
               "concurrent": {"a": {"n": 6, "p50_s": 2, "p95_s": 2.5}}}
    server = {"single": {"a": {"server_p95_s": 0.1}}, "concurrent": {"a": {"server_p95_s": 0.4}}}
    g = goals(actions, server, {"single": [], "concurrent": []}, {}, 6)
    assert g["p95_under_3x_single"] == {"ok": True, "ratios": {"a": 2.5}}
    assert g["server_p95_under_3x_single"] == {"ok": False, "ratios": {"a": 4.0}}
    assert g["no_error"]["ok"] and not g["rss_back_within_20pct"]["ok"]  # no RSS samples: not judged met


def test_stack_sampler_counts_where_each_thread_waits(tmp_path):
    path = tmp_path / "profile.json"
    sampler = StackSampler(str(path), every_s=0.005, write_every_s=0.05)
    profiles = PhaseProfiles(path, settle_s=0.15)
    lock = threading.Lock()
    lock.acquire()
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=0.6), name="ScriptRunner.scriptThread")
    sampler.start()
    with profiles.phase("p"):
        waiter.start()
        time.sleep(0.4)
    lock.release()
    waiter.join()
    script = profiles.top()["p"]["script"]
    assert script["samples"] > 10
    assert script["leaf"][0][0].endswith("<lambda>") and script["leaf"][0][1] > 0.5  # waits in the lambda's acquire
    assert json.loads(path.read_text())["counts"]["script"]["#samples"] >= script["samples"]


def test_read_runs_of_a_server_that_wrote_none(tmp_path):
    assert read_runs(tmp_path / "runs.jsonl") == []
    (tmp_path / "runs.jsonl").write_text(json.dumps(_run("s", 1.0, 0.1, 0.1)) + "\n\n")
    assert read_runs(tmp_path / "runs.jsonl")[0]["ua"] == "ssd-soak s"
