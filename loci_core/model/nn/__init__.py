"""Building blocks and sub-networks of the Loci model (one idea per module)."""
