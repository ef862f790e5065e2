"""Clean image sources: dead-leaves training images, shipped test photos (and dataset loaders)."""
