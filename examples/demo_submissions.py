"""Upload demo submissions for every task of the latest release (organizer-side demo only).

    python examples/demo_submissions.py CHALLENGE_YAML

Per task: team-a sends a perfect submission (it reads the hidden answer key,
which only an organizer can), team-b a random one, and team-a an invalid one
(a missing id), so every status shows up on the leaderboard and in feedback.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from challenge.config import load_config
from tasks.storage import open_location


def main(config_path: str) -> None:
    config = load_config(config_path)
    public, private, submissions = (open_location(config, n) for n in ("public", "private", "submissions"))
    latest = json.loads(public.read_bytes("latest.json"))
    rng = np.random.default_rng(0)
    teams = [t.id for t in config.teams]
    for task_id in latest["tasks"]:
        answers = pq.read_table(io.BytesIO(private.read_bytes(f"releases/{latest['release']}/{task_id}/answers.parquet")))
        classes = sorted(set(answers["label"].to_pylist()))
        perfect = answers.select(["id", "label"])
        random = pa.table({"id": answers["id"], "label": pa.array(rng.choice(classes, answers.num_rows))})
        invalid = perfect.slice(1)
        for team, name, table in ((teams[0], "perfect.csv", perfect), (teams[1 % len(teams)], "random.csv", random),
                                  (teams[0], "oops.csv", invalid)):
            out = io.BytesIO()
            pa_csv.write_csv(table, out)
            submissions.write_bytes(f"{team}/{task_id}/{name}", out.getvalue())
        print(f"{task_id}: uploaded perfect and invalid submissions for {teams[0]}, a random one for {teams[1 % len(teams)]}")


if __name__ == "__main__":
    main(sys.argv[1])
