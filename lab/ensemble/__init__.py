"""Model ensembles: several networks trained apart, their predictions averaged at test time.

The notes' "After training": train several independent models and average their
predictions; or take snapshots of one run (the ends of cosine cycles) as the members.

    combine.py   the arithmetic: softmax, the mean of probabilities, the vote, the metrics
    members.py   a scenario's members (seeds or listed settings), their Simulations, their
                 validation probabilities
    train.py     one member trained on the headless runner (in a worker process or here)
    record.py    every member trained (in parallel with jobs > 1), combined at each
                 checkpoint: the ensemble's metrics for claims and the headless report
    report.py    the headless report (`nnlab run --headless`): tables over time, CSV

The lab's live view steps the members with lab/tui/ensemble_lockstep.py (the compare
screen's Lockstep) and combines them with the same functions.  Nothing here imports
lab.tui or Textual (tests/test_ensemble.py checks it).
"""
