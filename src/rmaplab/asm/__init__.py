"""Architecture constants: the model's include/asm-x86_64."""
