"""`test_paced`: a document kind whose pace the test sets (DESIGN §8, the last trap).

A test that needs a job half way (to kill its worker, cancel it, watch it run) must not race a
renderer that keeps getting faster. This kind draws one page per step and takes a step only when
the test lets it: the test writes how many steps each part may take into a gate file,
`<PRESSROOM_DATA>/gates/<gate>` (`set_gate`; tests/services.py `Stack.allow`), and the worker
looks at it while it waits. A missing gate is closed. Loaded only where PRESSROOM_EXTRA_KINDS
names this module (the integration stack), never in production.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app
from fpdf import FPDF
from pydantic import BaseModel, ConfigDict, Field

from webapp.documents import DocumentKind, Part, Prepared, RenderContext, register
from webapp.pdf.merge import merge_pdfs

if TYPE_CHECKING:
    from webapp.models import Job, User

NAME = "test_paced"
MAX_STEPS = 10_000
# How often a waiting worker looks at its gate. Each look also writes progress (forced): the
# heartbeat and the cancel check, so a cancelled job stops within this, well inside 2 s.
POLL_S = 0.05


def gate_file(data: Path, gate: str) -> Path:
    return data / "gates" / gate


def set_gate(data: Path, gate: str, steps: int) -> None:
    """Let each part of the gate's jobs (the whole job when it is not split) take `steps` steps."""
    path = gate_file(data, gate)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{gate}.{os.getpid()}.tmp")
    tmp.write_text(str(steps))
    os.replace(tmp, path)  # a worker reads the old number or the new one, never half a write


def allowed(gate: str) -> int:
    try:
        return int(gate_file(Path(current_app.config["PRESSROOM_DATA"]), gate).read_text())
    except FileNotFoundError:
        return 0


class PacedParams(BaseModel):
    """How many steps the job has, and the gate that lets them through (a plain file name)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    steps: int = Field(ge=1, le=MAX_STEPS)
    gate: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")


class PacedSteps(DocumentKind):
    name = NAME
    title = "Paced steps (tests only)"
    unit = "step"
    Params = PacedParams

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        return Prepared(
            params=params.model_dump(),
            data_version="1",
            total=params.steps,
            summary=params.model_dump(),
        )

    def file_name(self, job: Job) -> str:
        return f"paced-{job.params['gate']}.pdf"

    def split(self, job: Job, config: dict[str, Any]) -> list[Part]:
        """Parts of CHUNK_LABELS steps, like a label batch."""
        per_part = int(config["CHUNK_LABELS"])
        parts = [
            Part(i, a, min(a + per_part, job.progress_total))
            for i, a in enumerate(range(0, job.progress_total, per_part))
        ]
        return parts if len(parts) > 1 else []

    def merge(self, job: Job, ctx: RenderContext, parts: list[Path], out: Path) -> None:
        merge_pdfs(parts, out)

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        start, stop = (part.start, part.stop) if part else (0, job.progress_total)
        gate = job.params["gate"]
        # Each page names the run that drew it: the job's start, kept when the engine retries it,
        # new when a person does, so a test can tell a part of this run from one left by another.
        run = job.started_at.isoformat() if job.started_at else "-"
        pdf = FPDF(format=(70, 20))
        pdf.set_auto_page_break(False)
        pdf.set_font("helvetica", size=7)
        done = 0  # steps of this part drawn so far
        while True:
            let_through = min(allowed(gate), stop - start)
            while done < let_through:
                pdf.add_page()
                pdf.multi_cell(
                    0, 4, text=f"{gate} step {start + done + 1} of {job.progress_total}\nrun {run}"
                )
                done += 1
                ctx.progress(done)
            if done == stop - start:
                break
            ctx.progress(done, force=True)
            time.sleep(POLL_S)  # the job pacing itself while its gate is shut, not a test sleep
        ctx.progress(done, force=True)  # a chunk's last steps reach its parent's count
        pdf.output(str(out))


register(PacedSteps())
