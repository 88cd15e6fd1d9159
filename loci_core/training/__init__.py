"""Training: the trainer (`loci train`), its losses and optimisers, run directories and their checks, and the
temporal read-out trained on frozen slots (`loci readout`)."""
