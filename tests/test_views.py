"""The text users read, from job sets the real core ran: figures, listing cells, the ``--json``
summary, status phrases, styles and progress text."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from qjm_tui import JobManager, views
from qjm_tui.core.status import JobStatus, SetState
from qjm_tui.core.store import JobSetSummary
from qjm_tui.views import (
    JOB_GLYPHS,
    JOB_GLYPHS_ASCII,
    JOB_STATUS_PHRASES,
    JOB_STATUS_STYLES,
    SET_GLYPHS,
    SET_STATE_STYLES,
    job_set_cells,
    job_set_summary,
    job_status_phrase,
    percent,
    progress_line,
    progress_parts,
    set_figures,
)

from .conftest import basis_state, bell


def summary_of(manager: JobManager, job_set_id: str) -> JobSetSummary:
    return manager.store.summaries([job_set_id])[0]


@pytest.fixture
def done_set(manager: JobManager) -> str:
    """A finished set: five experiments in three jobs."""
    job_set = manager.run([bell(f"b{i}") for i in range(5)], backend="aer", shots=64,
                          max_experiments_per_job=2, name="five")
    assert job_set.wait(timeout=60) == "done"
    return job_set.job_set_id()


@pytest.fixture
def failed_set(manager: JobManager) -> str:
    """A set whose two jobs both failed (the simulator refuses the method)."""
    job_set = manager.run([bell("x"), basis_state("01")], backend="aer", shots=64,
                          max_experiments_per_job=1, method="bogus", name="broken", job_tags=["t1", "t2"])
    assert job_set.wait(timeout=60) == "failed"
    return job_set.job_set_id()


def test_figures_match_the_core_progress(manager: JobManager, done_set: str, failed_set: str) -> None:
    for job_set_id in (done_set, failed_set):
        summary = summary_of(manager, job_set_id)
        figures = set_figures(summary, now=summary.created + 1000.0)
        progress = manager.retrieve_job_set(job_set_id).progress()
        assert {f.name: getattr(figures, f.name) for f in dataclasses.fields(figures)} == \
            {f.name: getattr(progress, f.name) for f in dataclasses.fields(progress)}
        assert figures.finished_jobs == figures.total_jobs


def test_figures_of_a_finished_set_do_not_depend_on_now(manager: JobManager, done_set: str) -> None:
    summary = summary_of(manager, done_set)
    early, late = set_figures(summary, summary.created + 1.0), set_figures(summary, summary.created + 1e6)
    assert early == late
    assert early.state == "done" and early.eta == 0.0 and early.fraction == 1.0
    assert (early.done, early.total_jobs, early.experiments_done, early.experiments) == (3, 3, 5, 5)


def test_json_summary_and_job_list(manager: JobManager, failed_set: str) -> None:
    summary = summary_of(manager, failed_set)
    row = manager.store.get_job_set(failed_set)
    data = job_set_summary(summary, summary.created + 5.0, row.run_options, manager.store.jobs(failed_set))
    assert list(data) == ["id", "name", "tags", "backend", "state", "shots", "run_options", "created",
                          "finished", "elapsed", "eta", "experiments", "experiments_done", "jobs",
                          "retries", "usage", "stopped", "estimated_time", "job_list"]
    assert (data["id"], data["name"], data["tags"], data["state"]) == (failed_set, "broken", ["t1", "t2"],
                                                                       "failed")
    assert data["run_options"] == {"method": "bogus"} and data["finished"] is not None
    assert data["jobs"] == {"total": 2, "done": 0, "failed": 2, "cancelled": 0, "running": 0, "pending": 0}
    handles = manager.retrieve_job_set(failed_set).managed_jobs()
    assert data["job_list"] == [
        {"index": j.index, "first_experiment": j.start_index, "last_experiment": j.end_index,
         "shots_round": j.shots_round, "status": "failed", "backend_job_id": j.job_id(),
         "attempts": j.attempts, "retries": j.retries, "error": j.error_message(), "session": None,
         "usage": {"quantum_seconds": None, "estimated_seconds": None},
         "estimated_time": None}
        for j in handles
    ]
    assert all("bogus" in j["error"] for j in data["job_list"])
    assert "job_list" not in job_set_summary(summary, summary.created)


def test_listing_cells(manager: JobManager, done_set: str, failed_set: str) -> None:
    failed = summary_of(manager, failed_set)
    cells = job_set_cells(failed, failed.created + 180)
    assert cells.id == failed_set and failed_set.endswith("-" + cells.short_id) and len(cells.short_id) == 8
    assert (cells.name, cells.state, cells.jobs, cells.experiments, cells.percent) == \
        ("broken", "failed", "0/2 (2 failed)", "0/2", "0%")
    assert (cells.glyph, cells.style, cells.created, cells.tags, cells.backend) == \
        ("✗", "red", "3 min ago", "t1,t2", "aer")
    assert job_set_cells(failed, failed.created, unicode=False).glyph == "x"
    done = job_set_cells(summary_of(manager, done_set), failed.created)
    assert (done.jobs, done.experiments, done.percent, done.style, done.created) == \
        ("3/3", "5/5", "100%", "green", "just now")


def test_percentages_round_down_the_same_everywhere_and_one_retry_is_singular(manager: JobManager,
                                                                           done_set: str) -> None:
    from qjm_tui.tui.browser import set_cells

    assert [views.retries_text(n) for n in (0, 1, 2, 1000)] == ["0 retries", "1 retry", "2 retries",
                                                                "1,000 retries"]
    assert [percent(f) for f in (0.0, 28 / 180, 2 / 3, 0.996, 1.0)] == ["0%", "15%", "66%", "99%", "100%"]
    # the list and the set pane agree on a running set two thirds done (not 67% and 66%)
    summary = dataclasses.replace(summary_of(manager, done_set), state="running", experiments_done=2,
                                  n_experiments=3)
    assert set_cells(summary, summary.created, unicode=True)["state"] == "◐ 66%"
    assert job_set_cells(summary, summary.created).percent == "66%"


def test_progress_text(manager: JobManager, done_set: str, failed_set: str) -> None:
    done = set_figures(summary_of(manager, done_set), 0.0)
    line = progress_line(done_set, done, final=True)
    assert line.startswith(f"{done_set}: done: 3/3 jobs done, 5/5 experiments, ")
    assert "left" not in line and "failed" not in line
    failed = set_figures(summary_of(manager, failed_set), 0.0)
    expected = f"{failed_set}: failed: 0/2 jobs done, 2 failed, 0/2 experiments"
    assert expected in progress_line(failed_set, failed)
    parts = progress_parts(failed, final=True)
    assert parts[:3] == [("2/2 jobs", None), ("0/2 exp", None), ("2 failed", "red")]
    assert parts[-1] == ("failed", None)
    # a running set: the estimate of the time left is shown until the end
    running = dataclasses.replace(done, state="running", done=2, eta=12.0)
    assert progress_line(done_set, running).endswith(", about 12.0s left")
    assert progress_parts(running)[-1] == ("~12.0s left", None)


def test_every_status_and_state_has_a_phrase_a_glyph_and_a_style() -> None:
    for status in JobStatus:
        assert job_status_phrase(status) == JOB_STATUS_PHRASES[status.value]
        assert status in JOB_GLYPHS and status in JOB_GLYPHS_ASCII and status in JOB_STATUS_STYLES
    for state in SetState:
        assert state in SET_GLYPHS and state in SET_STATE_STYLES
    assert job_status_phrase(JobStatus.QUEUED) == "job is queued"
    assert job_status_phrase("unheard-of") == "unheard-of"


def test_views_load_neither_rich_nor_textual() -> None:
    code = ("import sys, qjm_tui.views\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'textual')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_usage_words_mark_an_estimate_as_one() -> None:
    from qjm_tui.core.store import JobRow
    from qjm_tui.views import job_cost_text, usage_phrase

    assert usage_phrase(None, None) is None
    assert usage_phrase(12.34, None) == "12.3 s"
    assert usage_phrase(None, 4.0) == "about 4.0 s (estimated)"
    assert usage_phrase(1234.0, 4.0) == "1,234 s, and about 4.0 s estimated for jobs still to run"
    job = JobRow("s", 0, 0, 1, 100, 0, "queued", "j1", "qjm:s:0", 1, 0, None, 1.0, None, 1.0,
                 session_id="b\x1b1", session_mode="batch", usage_estimate=0.5)
    assert job_cost_text(job) == "batch b\\x1b1 · QPU about 0.5 s (estimated)"
    assert job_cost_text(JobRow("s", 0, 0, 1, 100, 0, "done", "j1", "qjm:s:0", 1, 0, None, 1.0, 2.0, 2.0,
                                usage=0.3, usage_estimate=0.5)) == "QPU 0.3 s"
    assert job_cost_text(JobRow("s", 0, 0, 1, 100, 0, "done", "j1", "qjm:s:0", 1, 0, None, 1.0, 2.0,
                                2.0)) is None


def test_one_progress_type_names_each_way_of_counting_the_jobs_not_finished() -> None:
    """The library's report counts every job not running yet as pending; listings and --json
    count the jobs the backend holds as running: one Progress, each count under its own name."""
    counts = {JobStatus.PENDING: 5, JobStatus.SUBMITTING: 1, JobStatus.QUEUED: 2, JobStatus.RUNNING: 3,
              JobStatus.DONE: 4, JobStatus.FAILED: 1}
    summary = JobSetSummary(
        id="20260101-000000-abcdef12", name="n", tags=[], backend="aer", shots=10, n_experiments=32,
        state=SetState.RUNNING, created=100.0, updated=100.0, finished=None, counts=counts,
        total_jobs=16, experiments_done=8, retries=2, seq=1,
        units={status: 2 * n for status, n in counts.items()})
    p = set_figures(summary, now=140.0)
    assert (p.unsubmitted, p.queued, p.running, p.done, p.failed, p.cancelled) == (5, 3, 3, 4, 1, 0)
    assert (p.pending, p.active, p.finished_jobs) == (8, 6, 5)
    assert (p.fraction, p.jobs_fraction) == (8 / 32, 5 / 16)
    assert p.elapsed == 40.0 and p.eta == pytest.approx(40.0 * 22 / 10)
    jobs = job_set_summary(summary, now=140.0)["jobs"]
    assert jobs == {"total": 16, "done": 4, "failed": 1, "cancelled": 0, "running": 6, "pending": 5}
