"""Transfer learning: pretrain on a source task, then train on a target task.

The notes ("After training"): pretrain, use the network as a feature extractor, then
fine-tune with about 1/10 of the original learning rate, sometimes freezing the lower
layers; train the extractor first, then fine-tune.

- spec.py: the cross-field checks of a scenario's [transfer] table;
- data.py: the source and target tasks (class subsets, a few labels per class);
- weights.py: the pretrained weights as an .npz (W1, b1, ...), saved atomically, loaded with checks;
- pretrain.py: the source task trained headless through lab/sim/run.py;
- session.py: what a Simulation of a transfer scenario adds (phase, frozen layers, lr
  factor, the source task's validation accuracy).

No Textual here.
"""
