"""The `judge` kind (LLM-as-judge): grade each row's response against named criteria.

One request per row asks for every criterion at once: for each, a short rationale and a score
on the job's integer `scale` (or one of its `verdicts`). Pairwise mode (`compare: [a, b]`)
sends each row twice, the two responses in both orders (request keys `ab` and `ba`), and asks
which is better per criterion; a win counts only when both orders agree (position-bias
control). The validated outputs are unpacked into `judgements` (one row per source row and
criterion) by sql/kinds/judge/insert_batch_judgements.sql; `judge_scores` aggregates them.

With `source: job:<name>` (another job's outputs), `response_column` defaults to the
generated `text` and `prompt_column` to the `prompt` that job rendered.
"""

import re
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from halfrate.kinds.base import DISTINCT_CHOICES, JobBase, Kind, SummaryDetail, UserContent
from halfrate.sql import load_sql
from halfrate.template import PromptTemplate

if TYPE_CHECKING:
    import duckdb

CRITERION_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
MAX_CRITERIA = 16
MAX_SCALE_STEPS = 100  # the scale is sent as an enum of its integers
PAIRWISE_KEYS = ("ab", "ba")
"""Pairwise requests: the responses as A and B in the compared order, then swapped."""
CHAINED_RESPONSE, CHAINED_PROMPT = "text", "prompt"
"""A job source's columns judged by default: the generated text and the rendered prompt."""


class JudgeJob(JobBase):
    """A judging job: every row's response gets a rationale and a score (or verdict) per
    criterion, or two responses are compared (`compare`)."""

    kind: Literal["judge"] = Field("judge", description="judge: grade responses (LLM-as-judge).")
    criteria: dict[str, str] = Field(
        description="What to judge: name -> what it means, e.g. accuracy: 'Is it correct?'.",
        json_schema_extra={  # _check_criteria, for forms
            "minProperties": 1,
            "maxProperties": MAX_CRITERIA,
            "propertyNames": {"pattern": CRITERION_PATTERN},
        },
    )
    scale: tuple[int, int] | None = Field(
        None, description="Score range [min, max], integers, e.g. [1, 5] (or give verdicts)."
    )
    verdicts: list[str] | None = Field(
        None,
        description="Allowed verdicts instead of a score, e.g. [correct, incorrect].",
        json_schema_extra=DISTINCT_CHOICES,
    )
    response_column: str | None = Field(
        None, min_length=1, description="Column judged (default with source job:<name>: text)."
    )
    prompt_column: str | None = Field(
        None,
        min_length=1,
        description="Column with the prompt answered (default with source job:<name>: prompt).",
    )
    reference_column: str | None = Field(
        None, min_length=1, description="Optional column with a gold answer shown to the judge."
    )
    compare: tuple[str, str] | None = Field(
        None, description="Pairwise mode: two response columns [a, b], judged in both orders."
    )
    instructions: str = Field(
        "", description="Extra guidance for the judge, after the built-in rubric (cached)."
    )
    max_tokens: int = Field(1024, ge=1, le=128_000, description="Output cap per request.")

    @model_validator(mode="after")
    def _check_judge(self) -> Self:
        _check_criteria(self.criteria)
        if self.prompt is not None or self.text_column != "text":
            raise ValueError(
                "kind judge builds each message from prompt_column, response_column (or "
                "compare) and reference_column: remove text_column / prompt"
            )
        if self.compare is not None:
            self._check_pairwise()
        else:
            self._check_grading()
        return self

    def _check_pairwise(self) -> None:
        assert self.compare is not None
        if self.compare[0] == self.compare[1]:
            raise ValueError(f"compare: name two different columns, not {self.compare[0]!r} twice")
        if self.scale is not None or self.verdicts is not None or self.response_column:
            raise ValueError(
                "compare (pairwise mode) asks which response is better (a, b or tie): remove "
                "scale, verdicts and response_column"
            )

    def _check_grading(self) -> None:
        if (self.scale is None) == (self.verdicts is None):
            raise ValueError("give either scale: [min, max] or verdicts: [...] (one of them)")
        if self.scale is not None:
            low, high = self.scale
            if low >= high:
                raise ValueError(
                    f"scale: [{low}, {high}]: the minimum must be below the maximum, e.g. [1, 5]"
                )
            if high - low > MAX_SCALE_STEPS:
                raise ValueError(f"scale: [{low}, {high}] spans more than {MAX_SCALE_STEPS}")
        if self.verdicts is not None:
            if len(self.verdicts) < 2 or len(set(self.verdicts)) != len(self.verdicts):
                raise ValueError("verdicts: give at least two different verdicts")
            if any(not v.strip() for v in self.verdicts):
                raise ValueError("verdicts: verdicts must be non-empty strings")
        if self.response_column is None and self.upstream is None:
            raise ValueError(
                "response_column: name the column holding the response to judge (with "
                "source: job:<name> it defaults to that job's generated text)"
            )

    @property
    def judged(self) -> dict[str, str]:
        """The columns shown to the judge, by role: prompt, response (or a and b), reference."""
        chained = self.upstream is not None
        roles = {"prompt": self.prompt_column or (CHAINED_PROMPT if chained else None)}
        if self.compare is not None:
            roles |= {"response_a": self.compare[0], "response_b": self.compare[1]}
        else:
            roles["response"] = self.response_column or CHAINED_RESPONSE
        roles["reference_answer"] = self.reference_column
        return {role: column for role, column in roles.items() if column}

    @property
    def template(self) -> PromptTemplate:
        """The judge's message: each shown column in a tagged section (pairwise: order ab)."""
        return _sections(self, swapped=False)


ROLE_KEYS = {
    "prompt": "prompt_column",
    "response": "response_column",
    "response_a": "compare",
    "response_b": "compare",
    "reference_answer": "reference_column",
}


def _sections(job: JudgeJob, *, swapped: bool) -> PromptTemplate:
    roles = dict(job.judged)
    if swapped:
        roles["response_a"], roles["response_b"] = roles["response_b"], roles["response_a"]
    literals, columns = [""], list[str]()
    for role, column in roles.items():
        literals[-1] += f"{chr(10) * 2 if columns else ''}<{role}>\n"
        columns.append(column)
        literals.append(f"\n</{role}>")
    required = tuple(c for r, c in roles.items() if r.startswith("response"))
    keys = tuple(ROLE_KEYS[role] for role in roles)
    return PromptTemplate(tuple(literals), tuple(columns), required=required, keys=keys)


def _check_criteria(criteria: dict[str, str]) -> None:
    if not criteria:
        raise ValueError(
            "criteria: give at least one criterion, name -> what it means, e.g. "
            "accuracy: 'Is the answer factually correct?'"
        )
    if len(criteria) > MAX_CRITERIA:
        raise ValueError(f"criteria: at most {MAX_CRITERIA} criteria per job")
    for name, meaning in criteria.items():
        if not re.fullmatch(CRITERION_PATTERN, name):
            raise ValueError(
                f"criteria: {name!r}: use lowercase letters, digits and _ (e.g. accuracy)"
            )
        if not meaning.strip():
            raise ValueError(f"criteria: {name!r}: say what it means")


class JudgeKind(Kind):
    name = "judge"
    config = JudgeJob
    tables = ("kinds/judge/judgements",)
    views = ("kinds/judge/judge_scores",)
    batch_loads = ("kinds/judge/delete_batch_judgements", "kinds/judge/insert_batch_judgements")
    stale_deletes = ("kinds/judge/delete_stale_judgements",)
    outputs = "kinds/judge/outputs"
    one_output_per_row = False

    def request_keys(self, job: JobBase) -> tuple[str, ...]:
        assert isinstance(job, JudgeJob)
        return PAIRWISE_KEYS if job.compare else ("",)

    def user_contents(self, job: JobBase, template: PromptTemplate) -> dict[str, UserContent]:
        assert isinstance(job, JudgeJob)
        if job.compare is None:
            return {"": UserContent(template.render())}
        swapped = _sections(job, swapped=True)
        return {"ab": UserContent(template.render()), "ba": UserContent(swapped.render())}

    def system_prompt(self, job: JobBase) -> str:
        assert isinstance(job, JudgeJob)
        return rubric(job)

    def output_schema(self, job: JobBase) -> dict[str, Any]:
        assert isinstance(job, JudgeJob)
        judgement = {
            "type": "object",
            "properties": {
                "rationale": {"type": "string", "description": "One or two short sentences."},
                **_answer(job),
            },
            "required": ["rationale", *_answer(job)],
            "additionalProperties": False,
        }
        return {
            "type": "object",
            "properties": dict.fromkeys(job.criteria, judgement),
            "required": list(job.criteria),
            "additionalProperties": False,
        }

    def summarize(self, con: "duckdb.DuckDBPyConnection", job_name: str) -> list[SummaryDetail]:
        rows = con.execute(load_sql("kinds/judge/summary"), {"job_name": job_name}).fetchall()
        return [
            SummaryDetail(
                name=f"criterion:{criterion}",
                title=f"Judged {criterion}",
                value=None if mean is None else float(mean),
                text=text,
            )
            for criterion, mean, text in rows
        ]


def _answer(job: JudgeJob) -> dict[str, Any]:
    if job.compare is not None:
        return {"winner": {"type": "string", "enum": ["A", "B", "tie"]}}
    if job.verdicts is not None:
        return {"verdict": {"type": "string", "enum": list(job.verdicts)}}
    assert job.scale is not None
    low, high = job.scale
    scores = list(range(low, high + 1))
    return {
        "score": {"type": "integer", "enum": scores, "description": f"{low} worst, {high} best"}
    }


def rubric(job: JudgeJob) -> str:
    """The judge's system prompt: the task, the criteria, the answer asked for, extra guidance."""
    criteria = "\n".join(f"- {name}: {meaning}" for name, meaning in job.criteria.items())
    shown = ", ".join(f"<{role}>" for role in job.judged)
    if job.compare is not None:
        task = (
            "You compare two responses, A and B, to the same prompt. For each criterion, write "
            "a short rationale (one or two sentences), then name the better response: A, B, "
            "or tie. Which response is shown first is arbitrary: never prefer a position."
        )
    elif job.verdicts is not None:
        task = (
            "You judge a response. For each criterion, write a short rationale (one or two "
            f"sentences), then give one verdict: {', '.join(job.verdicts)}."
        )
    else:
        assert job.scale is not None
        task = (
            "You judge a response. For each criterion, write a short rationale (one or two "
            f"sentences), then give an integer score from {job.scale[0]} (worst) to "
            f"{job.scale[1]} (best)."
        )
    reference = " Use the <reference_answer> as the gold standard." if job.reference_column else ""
    text = (
        f"You are an impartial, strict judge. {task} Judge only what the criteria ask; do not "
        f"reward length or style beyond them.{reference} Each message holds {shown}.\n\n"
        f"Criteria:\n{criteria}\n\nAnswer with JSON that matches the schema."
    )
    return f"{text}\n\n{job.instructions}" if job.instructions.strip() else text


JUDGE = JudgeKind()
