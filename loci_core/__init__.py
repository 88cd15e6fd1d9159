"""loci_core: the Loci model (Traub et al., ICLR 2023) and its tooling, free of ROS."""

__version__ = "0.1.0"
