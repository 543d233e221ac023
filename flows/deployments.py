"""The challenge's Prefect deployments, served from one process by `challenge serve`.

`deploy/prefect.yaml` declares the same five deployments for `prefect deploy --all`
onto a work pool; keep the two in step (a test compares them).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType

from challenge.core.config import ChallengeConfig

SCORE_EVERY_MINUTES = 5


def one_at_a_time() -> ConcurrencyLimitConfig:
    """A second run waits for the first (it is not cancelled: a manual trigger is never lost)."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def build_deployments(config: ChallengeConfig, config_path: str, score_every_minutes: float = SCORE_EVERY_MINUTES,
                      collect_cron: str | None = None, paused: bool = False) -> list[Any]:
    """collect-datasets, publish-release, score-submissions (on an interval), run-baselines and finalize-challenge,
    each named after the challenge, e.g. `score-submissions/<challenge name>`."""
    from challenge.flows.collect_datasets import collect_datasets
    from challenge.flows.publish_release import publish_release
    from challenge.flows.run_baselines import run_baselines
    from challenge.flows.score_submissions import finalize_challenge, score_submissions

    # module paths (challenge.flows.<module>.<flow>): they resolve in the installed package from any folder
    common: dict[str, Any] = {"name": config.name, "parameters": {"config_path": config_path},
                              "entrypoint_type": EntrypointType.MODULE_PATH,
                              "concurrency_limit": one_at_a_time(), "paused": paused}
    tag = f"challenge:{config.name}"
    return [
        collect_datasets.to_deployment(**common, cron=collect_cron, tags=[tag, "intake"],
                                       description="Gate contributors' drops (manual; optional daily cron)."),
        publish_release.to_deployment(**common, tags=[tag, "release"],
                                      description="Publish staged tasks as a new immutable release (manual)."),
        score_submissions.to_deployment(**common, interval=timedelta(minutes=score_every_minutes), tags=[tag, "scoring"],
                                        description=f"Score new submissions every {score_every_minutes:g} min; "
                                                    "rescore=true after an answer-key fix."),
        run_baselines.to_deployment(**common, tags=[tag, "baseline"],
                                    description="Train a baseline per task of the latest release and submit it "
                                                "as team baseline (manual, after each release)."),
        finalize_challenge.to_deployment(**common, tags=[tag, "scoring"],
                                         description="Switch the leaderboards to private scores (manual, final)."),
    ]


def serve_all(config: ChallengeConfig, config_path: str, score_every_minutes: float = SCORE_EVERY_MINUTES,
              collect_cron: str | None = None, limit: int | None = None) -> None:
    """Serve every deployment from this process until interrupted (runs execute as subprocesses)."""
    from prefect import serve

    serve(*build_deployments(config, config_path, score_every_minutes, collect_cron), limit=limit)
