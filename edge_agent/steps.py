"""A plan of small steps, each with the words a technician reads and the action that does it.

`install` and `uninstall` build a `Plan` first, checking what they can without
changing anything, so `--dry-run` prints exactly the steps a real run would take.
`run_plan` executes them in order and reports each one; the first failure stops
the plan with an `AgentError` naming the step.

Example:
    >>> plan = Plan()
    >>> plan.add("say hello", lambda: "hello")
    >>> run_plan(plan, lambda result: print(result.ok, result.step.description, result.detail))
    True say hello hello
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.errors import AgentError

Action = Callable[[], str | None]
"""Does one step; may return a short detail for the report (e.g. the device id)."""


class StepError(AgentError):
    """A step failed for a reason outside our own error tree (e.g. a file system error)."""


@dataclass(frozen=True)
class Step:
    """One thing a plan does."""

    description: str
    action: Action


@dataclass(frozen=True)
class StepResult:
    """How a step went: `detail` is the step's note on success, the reason on failure."""

    step: Step
    ok: bool
    detail: str | None = None


Reporter = Callable[[StepResult], None]
"""Told about each step as it finishes (the CLI prints a ✓ or ✗ line)."""


@dataclass
class Plan:
    """Steps in order, plus notes to print before (`intro`) and after (`outro`) them."""

    steps: list[Step] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    outro: list[str] = field(default_factory=list)

    def add(self, description: str, action: Action) -> None:
        """Append a step."""
        self.steps.append(Step(description, action))


def run_plan(plan: Plan, report: Reporter) -> None:
    """Run every step in order, reporting each; stop at the first failure and raise it."""
    for step in plan.steps:
        try:
            detail = step.action()
        except AgentError as exc:
            report(StepResult(step, ok=False, detail=str(exc)))
            raise
        except OSError as exc:
            report(StepResult(step, ok=False, detail=str(exc)))
            raise StepError(f"{step.description}: {exc}") from exc
        report(StepResult(step, ok=True, detail=detail))
