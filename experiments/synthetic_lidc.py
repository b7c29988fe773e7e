"""The quick start: MoSE with its extensions on the synthetic LIDC-like set, train + test on a CPU.

The data (32x32 ambiguous blobs with two or three true mask modes of four types, four
annotations drawn from them) is generated into synthetic_data/lidc_wobble on the first run.
After training, the gate is refitted, the best checkpoint is evaluated on the test split and
compared with the true distribution.

`synthetic_lidc_paper.py` is the same data, model and schedule with the paper's method only;
this config adds the five extensions of docs/extensions.md, which also measures each:
- coupling 'expert': the exact transport optimum while γ < 1; at γ = 1 every annotation goes to
  the expert whose samples are nearest on average, so every expert keeps one role;
- revive_experts: an expert left without annotations is re-seeded from the worst-fitting live
  one;
- gate_input 'image': the gate reads the image through a small CNN of its own (the cues are the
  contrast of small regions, which the bottleneck's global average blurs);
- gate_refit_steps: after training, the gate is fitted anew to the training signal with the
  backbone and the experts frozen;
- gate_tta: at evaluation π is the mean over the image's eight flips and quarter turns.
The annotators trace each outline differently (wobble 0.6 px, no radius jitter), and an image
shows a halo or a satellite, never both: with the generator's default radius jitter MoSE's loss
itself prefers experts for a smaller and a larger core to an expert for the satellite
(docs/extensions.md, "Where the extensions do not help").
"""

_base_ = "synthetic_lidc_paper.py"  # the data, model and schedule
experiment_name = "synthetic_lidc"
coupling = "expert"  # exact transport below γ = 1, annotations to experts at γ = 1
revive_experts = dict(threshold=0.03, epochs=[3, 14])  # re-seed an expert below 3 % of the mass
gate_input = "image"  # the gate reads the image through a CNN of its own
gate_refit_steps = 1200  # refit the gate of the best checkpoint at the end
gate_tta = True  # evaluate the gate on the image's flips and quarter turns
