"""ament_python package 'loci_ros': installs loci_core and loci_ros, their console scripts,
and the ROS share files (package.xml, resource marker, launch files, configs)."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "loci_ros"


def share(subdir, pattern):
    return (os.path.join("share", PACKAGE, subdir), sorted(glob(os.path.join(subdir, pattern))))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["loci_core", "loci_core.*", "loci_ros", "loci_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
        share("launch", "*.launch.py"),
        share("config", "*.yaml"),
        share("config", "*.rviz"),
        share("config", "*.xml"),
        share("config/models", "*.yaml"),
        share("models", "*.pt"),
        share("models", "*.md"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="loci developers",
    maintainer_email="loci@example.org",
    description="Loci slot tracking: PyTorch library and ROS 2 perception node",
    license="MIT",
    entry_points={
        "console_scripts": [
            "loci = loci_core.cli:main",
            "tracker_node = loci_ros.tracker_node:main",
        ],
        # `loci` sub-commands of this package (loci_core.cli reads the group; the value is the module)
        "loci.commands": [
            "bag = loci_ros.bag_commands",
            "demo = loci_ros.demo",
        ],
    },
)
