"""Evaluation: `loci eval` on CATER-style videos and on footage, tracking and snitch metrics, the baselines
and the learning curve (`loci curve`)."""
