"""loci_ros: the thin rclpy layer over loci_core (node, message conversion, bag tools)."""
