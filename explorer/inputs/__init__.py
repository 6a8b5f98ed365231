"""What the explorer runs on: models to offer, images and samples, ground truth."""
