"""CATER-style data: scene sampler, renderer, on-disk format (writer/reader) and torch Datasets."""
