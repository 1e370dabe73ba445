"""The network (crnn), its named sizes (presets) and the model file (io). Submodules import torch lazily: import what you need."""
