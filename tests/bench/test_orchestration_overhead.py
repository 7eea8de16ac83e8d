"""The orchestration_overhead benchmark's bookkeeping: rounds, gaps and medians (pure, no Airflow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench import orchestration_overhead as bench
from sparkvision.platform.layout import validate_name

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def task(task_id: str, start: float, end: float, scheduled: float, queued: float) -> dict:
    return {
        "task_id": task_id,
        "state": "success",
        "start_date": stamp(start),
        "end_date": stamp(end),
        "scheduled_when": stamp(scheduled),
        "queued_when": stamp(queued),
        "duration": end - start,
    }


def chain_run(job_seconds: float, gap: float) -> dict:
    """A DAG run whose tasks are resolve, then the five Spark jobs one after another, ``gap`` s apart."""
    tasks, upstream, clock, previous = [task("resolve", 0, 1, 0, 0)], {"resolve": []}, 1.0, "resolve"
    for job in bench.SPARK_JOBS:
        start = clock + gap
        tasks.append(task(job, start, start + job_seconds, clock + gap * 0.5, clock + gap * 0.75))
        upstream[job] = [previous]
        clock, previous = start + job_seconds, job
    run = {"start_date": stamp(0), "end_date": stamp(clock), "state": "success"}
    return {"run": run, "tasks": tasks, "upstream": upstream, "observed_wall_s": clock + 2}


def one_round(round_no: int, script_job_s: float, dag_job_s: float, gap: float) -> dict:
    script = {
        "wall_s": 5 * script_job_s,
        "jobs_s": dict.fromkeys(bench.SPARK_JOBS, script_job_s),
        "stack_cpu_s": float(round_no),
    }
    return {
        "round": round_no,
        "order": list(bench.side_order(round_no)),
        "script": {**script, "train": {"seconds": script_job_s, "images_per_s": 10_000 / script_job_s}},
        "dag": {
            **bench.analyse(chain_run(dag_job_s, gap), script),
            "train": {"seconds": dag_job_s, "images_per_s": 10_000 / dag_job_s},
        },
    }


def test_rounds_alternate_and_never_share_names():
    assert [bench.side_order(n) for n in (1, 2, 3)] == [("script", "dag"), ("dag", "script"), ("script", "dag")]
    names = [bench.round_names(n) for n in (1, 2, 3)]
    for key in ("dataset", "model"):
        assert len({found[key] for found in names}) == 3
    for found in names:
        for name in found.values():
            validate_name(name, "name")


def test_rounds_setting(monkeypatch):
    monkeypatch.delenv("SPARKVISION_BENCH_ORCH_ROUNDS", raising=False)
    assert bench.rounds() == 3
    monkeypatch.setenv("SPARKVISION_BENCH_ORCH_ROUNDS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        bench.rounds()


def test_analyse_splits_each_gap_into_its_parts():
    found = bench.analyse(chain_run(10.0, 2.0), {"jobs_s": dict.fromkeys(bench.SPARK_JOBS, 9.5)})
    assert [g["task"] for g in found["gaps"]] == list(bench.SPARK_JOBS)
    assert found["median_gap_s"] == 2.0
    parts = found["median_parts_s"]
    assert parts == {"end_to_scheduled_s": 1.0, "scheduled_to_queued_s": 0.5, "queued_to_start_s": 0.5}
    assert found["dag_wall_s"] == 1 + 5 * 12
    assert found["gap_sum_s"] == 10.0
    assert found["non_spark_tasks_s"] == 1.0
    assert found["spark_task_extra_s"] == dict.fromkeys(bench.SPARK_JOBS, 0.5)


def test_the_ratio_is_of_the_medians_and_one_slow_round_does_not_decide_it():
    per_round = [one_round(1, 10.0, 10.0, 1.0), one_round(2, 10.0, 20.0, 1.0), one_round(3, 10.0, 10.0, 1.5)]
    summary = bench.summarise(per_round)
    assert summary["rounds"] == 3
    assert summary["script_wall_s"] == 50.0
    assert summary["dag_wall_s"] == 1 + 5 * 11.5  # round 3's; round 2's slow jobs (106 s) do not count
    assert summary["round_ratios"] == [1.12, 2.12, 1.17]
    assert summary["ratio"] == 1.17
    assert summary["median_gap_s"] == 1.0  # every round's gaps pooled: ten of 1 s, five of 1.5 s
    assert summary["median_parts_s"]["end_to_scheduled_s"] == 0.5
    assert summary["jobs_s"]["train"] == {"script": 10.0, "dag": 10.0}
    assert summary["stack_cpu_during_script_s"] == 2.0

    rows = bench.rows_of(summary, per_round, size=200)
    dag_row, gap_row = rows[1], rows[2]
    assert dag_row["target_met"] is True
    assert "2.12x" in dag_row["ratio"]  # the slow round is shown, not hidden
    assert gap_row["target_met"] is True
    assert "r2: 10.0 s (1,000 img/s) / 20.0 s (500 img/s)" in rows[6]["value"]
