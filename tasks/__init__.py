"""Steps of the pipeline, one package per stage of a challenge's life: intake (drops gated and staged), release
(published releases, leak checks), scoring (submissions admitted, validated, scored), corrections (answer keys
fixed), boards (leaderboards, intervals, the results report), baselines, participant (a team's own commands).
Plain typed functions, and the Prefect tasks that wrap them; `artifacts` and `retry` serve every stage."""
