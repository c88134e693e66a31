"""Bottom-layer definitions shared by mm and rmap: the model's include/linux."""
