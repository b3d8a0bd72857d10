"""Model ensembles: several networks trained apart, their predictions averaged at test time.

The notes' "After training": train several independent models and average their
predictions; or take snapshots of one run (the ends of cosine cycles) as the members.

    combine.py   the arithmetic: softmax, the mean of probabilities, the vote, the metrics
    members.py   a scenario's members (seeds or listed settings), their Simulations, their
                 validation probabilities
    train.py     one member trained on the headless runner (in a worker process or here)
    record.py    every member trained (in parallel with jobs > 1), combined at each
                 checkpoint: the ensemble's metrics for claims and the headless report
    live.py      the members stepped together for the TUI (a Lockstep), combined live

No Textual outside live.py's users (lab/tui/screens/ensemble.py).
"""
