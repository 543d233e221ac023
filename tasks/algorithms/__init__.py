"""The algorithm track: a team's code, run on our side in a sandbox on every task (docs/contract.md).

archive.py unpacks an uploaded `<name>.zip` safely; task_input.py lays out the folder an algorithm reads (the
task as a participant downloads it, plus task.json); sandbox.py runs `python main.py --input IN --output OUT`
under bubblewrap with no network and bounded time, memory, processes and output; check.py checks what it
wrote with the scorer's own checks (`challenge algorithm-check`).
"""
