"""Baselines evaluated next to Loci on the same videos (`loci eval`).

* chance: always the most frequent training classes (chance.py);
* last seen: the snitch's last ground-truth-visible position, an oracle of "track what you
  can see, assume hidden things stay put" (last_seen.py);
* classical: what a ROS user might build without learning: background subtraction,
  connected components, Hungarian matching with constant-velocity Kalman filters, the snitch
  picked by its gold colour (classical.py).
"""
