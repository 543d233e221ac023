"""The entry points: the `challenge` command (organizer and participant), the demo, `init`, per-team IAM
policies, the local Prefect server and what the terminal shows."""
