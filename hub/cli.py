"""`outpost hub …` and `outpost model …`: run and administer the hub, manage models."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run and administer the hub.", no_args_is_help=True)
user_app = typer.Typer(help="Hub users and roles.", no_args_is_help=True)
token_app = typer.Typer(help="Enrollment tokens for new devices.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")

model_app = typer.Typer(help="Push models and roll them out to the fleet.", no_args_is_help=True)
rollout_app = typer.Typer(help="Canary rollouts: status, promote, roll back.", no_args_is_help=True)
model_app.add_typer(rollout_app, name="rollout")
